package org.xlir.core;


/** One text's vector, whether the text was cut at the model's max length, and the model's settings. */
public record Embedding(float[] vector, boolean truncated, ModelManifest manifest) {}

package org.xlir.core;

/**
 * Vectors for a list of texts, in input order, with which texts were cut at the model's max
 * length. {@code model} is the installed name, {@code manifest} the model's settings.
 */
public record EmbeddingResult(String model, ModelManifest manifest, float[][] vectors, boolean[] truncated) {

    public int dims() {
        return manifest.dim();
    }
}

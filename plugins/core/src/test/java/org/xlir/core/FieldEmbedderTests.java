package org.xlir.core;

import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The {@code xlir_embed} behaviour both engines share: option checks, per-document errors, the
 * truncation flag and the index stamp check. The embedding itself is a fixed vector here (the
 * model is exercised by the in-engine tests on real nodes).
 */
class FieldEmbedderTests {

    private static final ModelManifest MANIFEST = ModelManifest.fromMap(Map.of("source_model", "m", "dim", 2, "sha256", "ab"));

    /** A document as a flat map, with the index it goes to. */
    private record Doc(Map<String, Object> fields, String index) implements FieldEmbedder.Document {
        @Override
        public Object get(String field) {
            return fields.get(field);
        }

        @Override
        public void set(String field, Object value) {
            fields.put(field, value);
        }
    }

    /** Texts longer than 5 characters come back truncated, as a model with a tiny max_length would. */
    private static final FieldEmbedder.BatchedEmbed FIXED = (model, text, type, listener) -> listener.onResponse(
        new Embedding(new float[] { 0.6f, 0.8f }, text.length() > 5, MANIFEST)
    );

    private static Exception run(FieldEmbedder.Options options, Doc doc, Map<String, Object> stamp) {
        AtomicReference<Exception> result = new AtomicReference<>(new IllegalStateException("not completed"));
        new FieldEmbedder(options, FIXED, index -> stamp).execute(doc, result::set);
        return result.get();
    }

    private static FieldEmbedder.Options options(boolean ignoreMissing) {
        return FieldEmbedder.Options.of("default", Map.of("text", "embedding"), "passage", ignoreMissing, true);
    }

    @Test
    void checksOptionsNamingTheProperty() {
        assertEquals("model", assertThrows(FieldEmbedder.ConfigException.class, () -> FieldEmbedder.Options.of("../x", Map.of("a", "b"), "passage", false, true)).property());
        assertEquals("field_map", assertThrows(FieldEmbedder.ConfigException.class, () -> FieldEmbedder.Options.of("m", Map.of(), "passage", false, true)).property());
        assertEquals("field_map", assertThrows(FieldEmbedder.ConfigException.class, () -> FieldEmbedder.Options.of("m", Map.of("a", 3), "passage", false, true)).property());
        assertEquals("input_type", assertThrows(FieldEmbedder.ConfigException.class, () -> FieldEmbedder.Options.of("m", Map.of("a", "b"), "doc", false, true)).property());
    }

    @Test
    void writesTheVectorAndFlagsTruncatedTexts() {
        Doc shortText = new Doc(new HashMap<>(Map.of("text", "hi")), "docs");
        assertNull(run(options(false), shortText, null));
        assertEquals(List.of(0.6f, 0.8f), shortText.fields().get("embedding"));
        assertFalse(shortText.fields().containsKey("embedding_truncated"));
        Doc longText = new Doc(new HashMap<>(Map.of("text", "a long text")), "docs");
        assertNull(run(options(false), longText, null));
        assertEquals(true, longText.fields().get("embedding_truncated"));
    }

    @Test
    void badDocumentsFailAloneWithTheFieldAndModelNamed() {
        Exception missing = run(options(false), new Doc(new HashMap<>(), "docs"), null);
        assertTrue(missing.getMessage().contains("field [text] is missing or null (model [default])"), missing.getMessage());
        Exception blank = run(options(false), new Doc(new HashMap<>(Map.of("text", " ")), "docs"), null);
        assertTrue(blank.getMessage().contains("field [text] is empty"), blank.getMessage());
        Exception number = run(options(false), new Doc(new HashMap<>(Map.of("text", 42)), "docs"), null);
        assertTrue(number.getMessage().contains("is of type [Integer], not a string"), number.getMessage());
        Doc skipped = new Doc(new HashMap<>(), "docs");
        assertNull(run(options(true), skipped, null));
        assertTrue(skipped.fields().isEmpty());
    }

    @Test
    void refusesAnIndexStampedWithAnotherModel() {
        Map<String, Object> other = Map.of("model", "other@int8", "dims", 2, "sha256", "cd");
        Exception e = run(options(false), new Doc(new HashMap<>(Map.of("text", "hi")), "docs"), other);
        assertTrue(e.getMessage().contains("index [docs] was built with model [other@int8]"), e.getMessage());
        Map<String, Object> same = Map.of("model", "m@none", "dims", 2, "sha256", "ab");
        assertNull(run(options(false), new Doc(new HashMap<>(Map.of("text", "hi")), "docs"), same));
    }
}

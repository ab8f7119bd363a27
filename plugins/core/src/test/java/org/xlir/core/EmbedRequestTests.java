package org.xlir.core;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The {@code _xlir/embed} body and answer, the same on both engines. */
class EmbedRequestTests {

    @Test
    void parsesDefaultsAndTheIndexParameter() {
        EmbedRequest r = EmbedRequest.parse(Map.of("texts", List.of("a"), "index", "body-index"), "param-index", 10);
        assertEquals("default", r.model());
        assertEquals(InputType.QUERY, r.inputType());
        assertEquals("param-index", r.index());
    }

    @Test
    void refusesBadBodies() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> EmbedRequest.parse(Map.of("texts", List.of("a"), "x", 1), null, 10)).getMessage().contains("unknown field(s) [x]"));
        assertThrows(IllegalArgumentException.class, () -> EmbedRequest.parse(Map.of("texts", List.of()), null, 10));
        assertThrows(IllegalArgumentException.class, () -> EmbedRequest.parse(Map.of("texts", List.of("a", "b")), null, 1));
        assertThrows(IllegalArgumentException.class, () -> EmbedRequest.parse(Map.of("texts", List.of(3)), null, 10));
        assertThrows(IllegalArgumentException.class, () -> EmbedRequest.parse(Map.of("texts", List.of("a"), "input_type", "doc"), null, 10));
    }

    @Test
    void answersWithBoxedListsEveryEngineCanWrite() {
        ModelManifest manifest = ModelManifest.fromMap(Map.of("source_model", "m", "dim", 2, "sha256", "ab", "quantization", "int8"));
        EmbedRequest r = EmbedRequest.parse(Map.of("texts", List.of("a")), null, 10);
        Map<String, Object> out = r.response(new EmbeddingResult("default", manifest, new float[][] { { 0.6f, 0.8f } }, new boolean[] { true }), 7);
        assertEquals(List.of("took", "model", "model_name", "dims", "input_type", "vectors", "truncated"), List.copyOf(out.keySet()));
        assertEquals("m@int8", out.get("model_name"));
        assertEquals(List.of(List.of(0.6f, 0.8f)), out.get("vectors"));
        assertEquals(List.of(true), out.get("truncated"));
    }
}

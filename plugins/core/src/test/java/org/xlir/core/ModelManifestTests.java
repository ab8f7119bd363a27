package org.xlir.core;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ModelManifestTests {

    static final String JSON = """
        {"source_model": "intfloat/multilingual-e5-small", "dim": 384, "sha256": "ABC",
         "encoder": {"pooling": "mean", "normalize": true, "query_prefix": "query: ",
                     "passage_prefix": "passage: ", "max_length": 256},
         "quantization": "int8", "output": "sentence_embedding", "pooling_in_graph": true,
         "opset": 17, "onnxruntime_version": "1.20.0", "parity": {"min_cosine": 0.99},
         "file_sizes": {"model.onnx": 123}, "future_key": 1}
        """;

    static ModelManifest parse(String json) throws Exception {
        return ModelManifest.parse(new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void readsWhatTheExporterWrites() throws Exception {
        ModelManifest m = parse(JSON);
        assertEquals("intfloat/multilingual-e5-small@int8", m.modelName());
        assertEquals(384, m.dim());
        assertEquals("abc", m.sha256());
        assertEquals(256, m.maxLength());
        assertEquals("query: ", m.prefix(InputType.QUERY));
        assertEquals("passage: ", m.prefix(InputType.PASSAGE));
        assertEquals("", m.prefix(InputType.RAW));
        assertEquals(17, m.opset());
    }

    @Test
    void missingEncoderSettingsTakeThePythonDefaults() throws Exception {
        ModelManifest m = parse("{\"source_model\": \"x\", \"dim\": 8, \"sha256\": \"00\"}");
        assertEquals("mean", m.pooling());
        assertTrue(m.normalize());
        assertEquals(512, m.maxLength());
        assertEquals("none", m.quantization());
        assertEquals("sentence_embedding", m.output());
        assertNull(m.opset());
    }

    @Test
    void requiredFieldsAreRequired() {
        assertThrows(IllegalArgumentException.class, () -> parse("{\"dim\": 8, \"sha256\": \"00\"}"));
    }

    @Test
    void indexStampCheckNamesBothModels() throws Exception {
        ModelManifest m = parse(JSON);
        Map<String, Object> stamp = new HashMap<>(Map.of("model", "other@none", "dims", 384, "sha256", "abc"));
        assertNull(IndexStamp.mismatch("docs", stamp, m));
        stamp.put("sha256", "def");
        String problem = IndexStamp.mismatch("docs", stamp, m);
        assertTrue(problem.contains("[other@none]") && problem.contains("[intfloat/multilingual-e5-small@int8]"), problem);
        assertTrue(problem.contains("sha256 def vs abc"), problem);
        stamp.put("sha256", "abc");
        stamp.put("mapping_dims", 768);
        assertTrue(IndexStamp.mismatch("docs", stamp, m).contains("dims"));
    }

    @Test
    void stampIsReadFromAMapping() {
        Map<String, Object> mapping = Map.of(
            "_meta", Map.of("xlir", Map.of("model", "a@none", "dims", 8, "sha256", "00")),
            "properties", Map.of("embedding", Map.of("type", "dense_vector", "dims", 8))
        );
        Map<String, Object> stamp = IndexStamp.fromMapping(mapping);
        assertEquals(8, stamp.get("mapping_dims"));
        assertNull(IndexStamp.fromMapping(Map.of("properties", Map.of())));
    }

    @Test
    void modelNamesCannotEscapeTheModelsDirectory() {
        assertEquals("default", ModelRegistry.validateName("default"));
        assertEquals("e5-small.int8", ModelRegistry.validateName("e5-small.int8"));
        for (String bad : new String[] { "..", "../x", "a/b", ".hidden", "", "a b" }) {
            assertThrows(IllegalArgumentException.class, () -> ModelRegistry.validateName(bad), bad);
        }
    }
}

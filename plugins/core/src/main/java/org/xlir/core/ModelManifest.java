package org.xlir.core;


import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * The exported model's settings file {@code xlir.json}, as written by the Python exporter
 * ({@code xlir_plugin/manifest.py}: {@code Manifest} with its nested {@code EncoderSettings}).
 * Missing keys take the Python defaults; unknown keys are ignored.
 */
public record ModelManifest(
    String sourceModel,
    int dim,
    String sha256,
    String quantization,
    String output,
    boolean poolingInGraph,
    String pooling,
    boolean normalize,
    String queryPrefix,
    String passagePrefix,
    int maxLength,
    Integer opset,
    String onnxruntimeVersion,
    Map<String, Object> parity,
    Map<String, Object> fileSizes,
    Map<String, Object> raw
) {

    public static final String FILE = "xlir.json";

    /** The name the Python side calls {@code Manifest.model_name}: {@code source_model@quantization}. */
    public String modelName() {
        return sourceModel + "@" + quantization;
    }

    public String prefix(InputType type) {
        return switch (type) {
            case QUERY -> queryPrefix;
            case PASSAGE -> passagePrefix;
            case RAW -> "";
        };
    }

    public static ModelManifest read(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return parse(in);
        }
    }

    public static ModelManifest parse(InputStream in) throws IOException {
        return fromMap(Json.readObject(in));
    }

    @SuppressWarnings("unchecked")
    public static ModelManifest fromMap(Map<String, Object> map) {
        Object enc = map.get("encoder");
        Map<String, Object> encoder = enc instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
        String sourceModel = string(map, "source_model", null);
        Object dim = map.get("dim");
        String sha256 = string(map, "sha256", null);
        if (sourceModel == null || dim instanceof Number == false || sha256 == null) {
            throw new IllegalArgumentException("needs [source_model], [dim] and [sha256]");
        }
        String pooling = string(encoder, "pooling", "mean");
        int maxLength = number(encoder, "max_length", 512);
        if (maxLength < 3) {
            throw new IllegalArgumentException("encoder.max_length " + maxLength + " is too small");
        }
        Object opset = map.get("opset");
        return new ModelManifest(
            sourceModel,
            ((Number) dim).intValue(),
            sha256.toLowerCase(java.util.Locale.ROOT),
            string(map, "quantization", "none"),
            string(map, "output", "sentence_embedding"),
            bool(map, "pooling_in_graph", true),
            pooling,
            bool(encoder, "normalize", true),
            string(encoder, "query_prefix", "query: "),
            string(encoder, "passage_prefix", "passage: "),
            maxLength,
            opset instanceof Number n ? n.intValue() : null,
            string(map, "onnxruntime_version", null),
            map.get("parity") instanceof Map<?, ?> p ? (Map<String, Object>) p : Map.of(),
            map.get("file_sizes") instanceof Map<?, ?> f ? (Map<String, Object>) f : Map.of(),
            map
        );
    }

    private static String string(Map<String, Object> map, String key, String def) {
        Object v = map.get(key);
        if (v == null) {
            return def;
        }
        if (v instanceof String s) {
            return s;
        }
        throw new IllegalArgumentException("[" + key + "] must be a string, got " + v);
    }

    private static int number(Map<String, Object> map, String key, int def) {
        Object v = map.get(key);
        if (v == null) {
            return def;
        }
        if (v instanceof Number n) {
            return n.intValue();
        }
        throw new IllegalArgumentException("[" + key + "] must be a number, got " + v);
    }

    private static boolean bool(Map<String, Object> map, String key, boolean def) {
        Object v = map.get(key);
        if (v == null) {
            return def;
        }
        if (v instanceof Boolean b) {
            return b;
        }
        throw new IllegalArgumentException("[" + key + "] must be true or false, got " + v);
    }
}

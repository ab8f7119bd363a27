package org.xlir.elasticsearch;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;

/** The versions this plugin was built with (from the build; no native library is loaded). */
public final class Versions {

    private static final Map<String, String> VERSIONS = load();

    private Versions() {}

    public static Map<String, String> all() {
        return VERSIONS;
    }

    public static String onnxruntime() {
        return VERSIONS.get("onnxruntime");
    }

    private static Map<String, String> load() {
        Properties props = new Properties();
        try (InputStream in = Versions.class.getResourceAsStream("versions.properties")) {
            if (in != null) {
                props.load(in);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (String key : new String[] { "plugin", "elasticsearch", "onnxruntime", "djl_tokenizers" }) {
            out.put(key, props.getProperty(key, "unknown"));
        }
        return Map.copyOf(out);
    }
}

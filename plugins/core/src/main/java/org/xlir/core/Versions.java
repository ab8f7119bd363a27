package org.xlir.core;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;

/**
 * The versions this plugin was built with (from the build; no native library is loaded): core's
 * {@code versions.properties} (plugin, onnxruntime, DJL tokenizers) plus the adapter's
 * {@code /xlir-engine.properties} ({@code engine.name}, {@code engine.version}), so
 * {@code _xlir/models} names the engine it was built for.
 */
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
        Properties props = read("versions.properties");
        Properties engine = read("/xlir-engine.properties");
        Map<String, String> out = new LinkedHashMap<>();
        out.put("plugin", props.getProperty("plugin", "unknown"));
        out.put(engine.getProperty("engine.name", "engine"), engine.getProperty("engine.version", "unknown"));
        for (String key : new String[] { "onnxruntime", "djl_tokenizers" }) {
            out.put(key, props.getProperty(key, "unknown"));
        }
        return Map.copyOf(out);
    }

    private static Properties read(String resource) {
        Properties props = new Properties();
        try (InputStream in = Versions.class.getResourceAsStream(resource)) {
            if (in != null) {
                props.load(in);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return props;
    }
}

package org.xlir.core;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.ToNumberPolicy;
import com.google.gson.reflect.TypeToken;

import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * Reads the model's JSON files (xlir.json, tokenizer.json) without an engine's XContent: Gson
 * ships in the plugin already (DJL's dependency). Integers come back as {@code Long}, other
 * numbers as {@code Double}, so file sizes render as integers again.
 */
public final class Json {

    private static final Gson GSON = new GsonBuilder().setObjectToNumberStrategy(ToNumberPolicy.LONG_OR_DOUBLE).create();

    private Json() {}

    public static Map<String, Object> readObject(InputStream in) throws IOException {
        try (Reader reader = new InputStreamReader(in, StandardCharsets.UTF_8)) {
            Map<String, Object> map = GSON.fromJson(reader, new TypeToken<Map<String, Object>>() {}.getType());
            if (map == null) {
                throw new IOException("empty JSON document");
            }
            return map;
        } catch (RuntimeException e) { // Gson's JsonParseException and friends
            throw new IOException("not a JSON object: " + e.getMessage(), e);
        }
    }
}

package org.xlir.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The {@code _meta.xlir} stamp that the Python client writes into every index it creates
 * (xlir_plugin/index.py {@code model_meta}) and the same check as its {@code check_meta}: an
 * index holds vectors of one model; writing or searching it with another is refused.
 */
public final class IndexStamp {

    public static final String META_KEY = "xlir";
    public static final String VECTOR_FIELD = "embedding";
    /** The nested field of a chunked index's passages (each with {@code start}, {@code end}, {@link #VECTOR_FIELD}). */
    public static final String PASSAGES_FIELD = "passages";

    private IndexStamp() {}

    /** Reads an index's stamp through the engine's client, as the calling user ({@link #required}'s rules). */
    @FunctionalInterface
    public interface Fetcher {
        void fetch(String index, Listener<Map<String, Object>> listener);
    }

    /**
     * The stamp in a mapping source ({@code {"_meta": {...}, "properties": {...}}}), with
     * {@code mapping_dims} from the {@code embedding} field; null when there is none.
     */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> fromMapping(Map<String, Object> mapping) {
        if (mapping == null) {
            return null;
        }
        if (mapping.size() == 1 && mapping.get("_doc") instanceof Map<?, ?> typed) {
            mapping = (Map<String, Object>) typed;
        }
        Object meta = mapping.get("_meta") instanceof Map<?, ?> m ? m.get(META_KEY) : null;
        if (!(meta instanceof Map<?, ?> stamp)) {
            return null;
        }
        Map<String, Object> out = new java.util.HashMap<>((Map<String, Object>) stamp);
        Object props = mapping.get("properties");
        if (props instanceof Map<?, ?> p && p.get(PASSAGES_FIELD) instanceof Map<?, ?> nested) {
            props = nested.get("properties"); // a chunked index: the vectors are the passages'
        }
        if (props instanceof Map<?, ?> p && p.get(VECTOR_FIELD) instanceof Map<?, ?> vector) {
            Object dims = vector.get("dims") != null ? vector.get("dims") : vector.get("dimension");
            if (dims instanceof Number d) {
                out.put("mapping_dims", d.intValue());
            }
        }
        return out;
    }

    /**
     * The stamp of {@code index}'s mapping source, for REST calls that name an index: an index
     * without one was not made by xlir, and is refused (IllegalArgumentException, 400).
     */
    public static Map<String, Object> required(String index, Map<String, Object> mapping) {
        Map<String, Object> stamp = fromMapping(mapping);
        if (stamp == null) {
            throw new IllegalArgumentException(
                "index [" + index + "] was not created by xlir (no _meta." + META_KEY + " model stamp): use another index name"
            );
        }
        return stamp;
    }

    /** The stamp of the one index {@code index} names, from the mapping sources it resolved to. */
    public static Map<String, Object> requiredOfOne(String index, List<Map<String, Object>> mappings) {
        if (mappings.size() != 1) {
            throw new IllegalArgumentException("[" + index + "] names " + mappings.size() + " indexes; give exactly one index");
        }
        return required(index, mappings.get(0));
    }

    /** Null when {@code manifest}'s model may fill/search the index; else the reason, naming both. */
    public static String mismatch(String index, Map<String, Object> stamp, ModelManifest manifest) {
        List<String> problems = new ArrayList<>();
        Object dims = stamp.get("dims");
        Object mappingDims = stamp.getOrDefault("mapping_dims", dims);
        if (asInt(dims) != manifest.dim() || asInt(mappingDims) != manifest.dim()) {
            problems.add("dims " + dims + " vs " + manifest.dim());
        }
        if (Objects.equals(stamp.get("sha256"), manifest.sha256()) == false) {
            problems.add("sha256 " + stamp.get("sha256") + " vs " + manifest.sha256());
        }
        if (problems.isEmpty()) {
            return null;
        }
        return "index ["
            + index
            + "] was built with model ["
            + stamp.get("model")
            + "] (dims "
            + dims
            + ", sha256 "
            + stamp.get("sha256")
            + "), not with ["
            + manifest.modelName()
            + "] (dims "
            + manifest.dim()
            + ", sha256 "
            + manifest.sha256()
            + "): "
            + String.join("; ", problems)
            + ". Use the same model, or index into a new index.";
    }

    /**
     * Null when the index's chunking (its stamp's {@code chunking}: passages of N tokens, or none)
     * is {@code settings}'; else the reason, in the Python client's words.
     */
    public static String chunkingMismatch(String index, Map<String, Object> stamp, Chunking.Settings settings) {
        Object have = stamp.get("chunking");
        Map<String, Object> want = settings == null ? null : settings.stamp();
        boolean same = have instanceof Map<?, ?> map
            ? want != null && want.keySet().stream().allMatch(k -> asInt(map.get(k)) == (int) want.get(k)) && map.size() == want.size()
            : want == null;
        if (same) {
            return null;
        }
        return "index [" + index + "] holds " + describe(have) + "; this write asks for " + describe(want)
            + ". Use the index's chunking settings, or index into a new index.";
    }

    private static String describe(Object chunking) {
        if (!(chunking instanceof Map<?, ?> c) || c.isEmpty()) {
            return "one vector per document (not chunked)";
        }
        return "passages of " + c.get("max_tokens") + " tokens, overlap " + c.get("overlap_tokens") + " (chunking v" + c.get("version") + ")";
    }

    private static int asInt(Object o) {
        return o instanceof Number n ? n.intValue() : Integer.MIN_VALUE;
    }
}

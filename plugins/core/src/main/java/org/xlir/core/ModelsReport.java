package org.xlir.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The body of {@code GET _xlir/models[/<name>]}, the same for both engines: the installed models
 * (from their xlir.json; nothing is loaded), the plugin's runtime versions, ingest counters and,
 * with {@code ?index=}, the index's stamp and {@code matches_index} per model. Blocking (disk).
 */
public final class ModelsReport {

    private ModelsReport() {}

    /** Builds the report on the search pool, after reading the index's stamp when {@code index} is given. */
    public static void run(Inference inference, String only, String index, IndexStamp.Fetcher stamps, Listener<Map<String, Object>> listener) {
        if (index == null) {
            inference.fork(listener, () -> build(inference, only, null, null));
            return;
        }
        stamps.fetch(index, Listener.of(stamp -> inference.fork(listener, () -> build(inference, only, index, stamp)), listener::onFailure));
    }

    /** {@code only}: one model (its absence is an error) or null for all; {@code stamp} null without an index. */
    public static Map<String, Object> build(Inference inference, String only, String index, Map<String, Object> stamp) {
        ModelRegistry registry = inference.registry();
        Map<String, Object> body = new LinkedHashMap<>();
        List<Object> models = new ArrayList<>();
        List<String> names = only == null ? registry.installed() : List.of(only);
        for (String name : names) {
            Map<String, Object> entry = new LinkedHashMap<>();
            entry.put("name", name);
            try {
                ModelManifest m = registry.manifest(name);
                describe(entry, m);
                entry.put("loaded", registry.isLoaded(name));
                if (stamp != null) {
                    entry.put("matches_index", IndexStamp.mismatch(index, stamp, m) == null);
                }
            } catch (ModelNotFoundException e) {
                if (only != null) {
                    throw e;
                }
                entry.put("error", e.getMessage());
            } catch (RuntimeException e) {
                entry.put("error", e.getMessage());
            }
            models.add(entry);
        }
        body.put("models_dir", registry.modelsDir().toString());
        body.put("runtime", new TreeMap<>(Versions.all()));
        body.put("stats", new TreeMap<>(inference.stats()));
        if (stamp != null) {
            Map<String, Object> indexInfo = new LinkedHashMap<>();
            indexInfo.put("name", index);
            indexInfo.put("stamp", stamp);
            body.put("index", indexInfo);
        }
        body.put("models", models);
        return body;
    }

    static void describe(Map<String, Object> entry, ModelManifest m) {
        entry.put("model", m.modelName());
        entry.put("source_model", m.sourceModel());
        entry.put("quantization", m.quantization());
        entry.put("dims", m.dim());
        entry.put("sha256", m.sha256());
        entry.put("max_length", m.maxLength());
        entry.put("pooling", m.pooling());
        entry.put("normalize", m.normalize());
        entry.put("query_prefix", m.queryPrefix());
        entry.put("passage_prefix", m.passagePrefix());
        entry.put("output", m.output());
        entry.put("pooling_in_graph", m.poolingInGraph());
        Map<String, Object> provenance = new LinkedHashMap<>();
        provenance.put("source_model", m.sourceModel());
        provenance.put("opset", m.opset());
        provenance.put("onnxruntime_version", m.onnxruntimeVersion());
        // int8 kernels differ between onnxruntime versions (cosine ~0.996 between 1.29 and 1.32):
        // vectors match the exporter's only when the versions are the same
        entry.put("same_onnxruntime_as_export", Versions.onnxruntime().equals(m.onnxruntimeVersion()));
        provenance.put("parity", m.parity());
        provenance.put("file_sizes", m.fileSizes());
        entry.put("provenance", provenance);
    }
}

package org.xlir.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The body of {@code POST _xlir/embed} ({@code {"model": "default", "texts": [...], "input_type":
 * "query", "index": ...}}), checked, and the answer's JSON: the same for both engines.
 */
public record EmbedRequest(String model, List<String> texts, InputType inputType, String index) {

    private static final Set<String> FIELDS = Set.of("model", "texts", "input_type", "index");

    /** Parses a request body; {@code indexParam} ({@code ?index=}) wins over the body's index. Throws IllegalArgumentException. */
    public static EmbedRequest parse(Map<String, Object> body, String indexParam, int maxTexts) {
        Set<String> unknown = new TreeSet<>(body.keySet());
        unknown.removeAll(FIELDS);
        if (unknown.isEmpty() == false) {
            throw new IllegalArgumentException("unknown field(s) " + unknown + " in _xlir/embed body; expected model, texts, input_type, index");
        }
        String model = body.getOrDefault("model", "default") instanceof String s ? s : null;
        ModelRegistry.validateName(model);
        Object rawTexts = body.get("texts");
        if (!(rawTexts instanceof List<?> list) || list.isEmpty()) {
            throw new IllegalArgumentException("[texts] must be a non-empty list of strings");
        }
        if (list.size() > maxTexts) {
            throw new IllegalArgumentException("[texts] has " + list.size() + " texts; at most " + maxTexts + " (xlir.rest.max_texts)");
        }
        List<String> texts = new ArrayList<>(list.size());
        for (int i = 0; i < list.size(); i++) {
            if (!(list.get(i) instanceof String t)) {
                throw new IllegalArgumentException("text at index " + i + " is not a string");
            }
            if (t.isBlank()) {
                throw new IllegalArgumentException("text at index " + i + " is empty");
            }
            texts.add(t);
        }
        Object typeValue = body.getOrDefault("input_type", "query");
        InputType type = InputType.parse(typeValue instanceof String s ? s : String.valueOf(typeValue));
        String index = indexParam != null ? indexParam : (body.get("index") instanceof String s ? s : null);
        return new EmbedRequest(model, List.copyOf(texts), type, index);
    }

    /**
     * Embeds the texts on the search pool and answers with {@link #response}; with an index, its
     * stamp (read first, as the calling user) must match the model, else IllegalArgumentException.
     */
    public void run(Inference inference, IndexStamp.Fetcher stamps, Listener<Map<String, Object>> listener) {
        long start = System.nanoTime();
        Listener<EmbeddingResult> answer = listener.map(result -> response(result, (System.nanoTime() - start) / 1_000_000));
        if (index == null) {
            inference.embed(model, texts, inputType, answer);
            return;
        }
        stamps.fetch(
            index,
            Listener.of(stamp -> inference.embed(model, texts, inputType, answer.map(result -> checkStamp(stamp, result))), answer::onFailure)
        );
    }

    /** The answer: {@code took} (ms on the node), model, model_name, dims, input_type, vectors, truncated. */
    public Map<String, Object> response(EmbeddingResult result, long tookMillis) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("took", tookMillis);
        out.put("model", result.model());
        out.put("model_name", result.manifest().modelName());
        out.put("dims", result.dims());
        out.put("input_type", inputType.toString());
        // boxed lists: not every engine's XContent writes primitive arrays (OpenSearch 3.5 does not)
        List<List<Float>> vectors = new ArrayList<>(result.vectors().length);
        for (float[] v : result.vectors()) {
            List<Float> row = new ArrayList<>(v.length);
            for (float f : v) {
                row.add(f);
            }
            vectors.add(row);
        }
        List<Boolean> truncated = new ArrayList<>(result.truncated().length);
        for (boolean t : result.truncated()) {
            truncated.add(t);
        }
        out.put("vectors", vectors);
        out.put("truncated", truncated);
        return out;
    }

    /** The result, or an IllegalArgumentException naming both models when the index's stamp differs. */
    public EmbeddingResult checkStamp(Map<String, Object> stamp, EmbeddingResult result) {
        String problem = IndexStamp.mismatch(index, stamp, result.manifest());
        if (problem != null) {
            throw new IllegalArgumentException("model [" + model + "]: " + problem);
        }
        return result;
    }
}

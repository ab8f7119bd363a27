package org.xlir.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * What the {@code xlir_embed} ingest processor does, for both engines: checks each source field,
 * embeds its text through the model's micro-batch, checks the index's model stamp and writes the
 * vectors (and {@code <target>_truncated: true} for a cut text). With {@code chunking}, a text is
 * first cut into passages ({@link Chunking}, the client's algorithm) and the target gets one
 * {@code {start, end, embedding}} object per passage (a nested field), as {@code xlir index}
 * writes them. Errors are per document and name the field or the model. The adapters'
 * processors only wrap their engine's document and options.
 */
public final class FieldEmbedder {

    public static final String TYPE = "xlir_embed";
    public static final String TRUNCATED_SUFFIX = "_truncated";

    /** The engine's ingest document, as much of it as the processor needs. */
    public interface Document {
        /** The field's value, or null when missing (or the path goes through a non-object). */
        Object get(String field);

        void set(String field, Object value);

        /** The index (or alias) the document is written to. */
        String index();
    }

    /** Embeds one text in the model's micro-batch; the listener runs in the submitter's context. */
    public interface BatchedEmbed {
        void embedBatched(String model, String text, InputType type, Listener<Embedding> listener);

        /** {@code text}'s passages with the model's tokenizer (in the caller's thread). */
        List<Chunking.Span> passages(String model, String text, Chunking.Settings settings) throws Exception;

        /** The service once the node has created it (processors are made before the plugin's components). */
        static BatchedEmbed lazy(Supplier<? extends BatchedEmbed> service) {
            return new BatchedEmbed() {
                @Override
                public void embedBatched(String model, String text, InputType type, Listener<Embedding> listener) {
                    try {
                        started().embedBatched(model, text, type, listener);
                    } catch (IllegalStateException e) {
                        listener.onFailure(e);
                    }
                }

                @Override
                public List<Chunking.Span> passages(String model, String text, Chunking.Settings settings) throws Exception {
                    return started().passages(model, text, settings);
                }

                private BatchedEmbed started() {
                    BatchedEmbed started = service.get();
                    if (started == null) {
                        throw new IllegalStateException("[" + TYPE + "] the xlir plugin is not started");
                    }
                    return started;
                }
            };
        }
    }

    /** The {@code _meta.xlir} stamp of an index (null when none, or no such index yet). */
    @FunctionalInterface
    public interface StampLookup {
        Map<String, Object> stamp(String index);
    }

    /** A bad processor option: the adapter raises its engine's configuration error for {@code property}. */
    public static final class ConfigException extends IllegalArgumentException {
        private final String property;

        ConfigException(String property, String message) {
            super(message);
            this.property = property;
        }

        public String property() {
            return property;
        }
    }

    /** The processor's options, checked; {@code chunking} null: one vector per text. */
    public record Options(
        String model,
        Map<String, String> fieldMap,
        InputType inputType,
        boolean ignoreMissing,
        boolean checkIndex,
        Chunking.Settings chunking
    ) {

        /** Validates options already read from the pipeline's JSON (no chunking); throws {@link ConfigException}. */
        public static Options of(String model, Map<String, Object> rawFieldMap, String inputType, boolean ignoreMissing, boolean checkIndex) {
            return of(model, rawFieldMap, inputType, ignoreMissing, checkIndex, null);
        }

        /** As above, with the {@code chunking} option ({@code {"max_tokens": N, "overlap_tokens": M}}) or null. */
        public static Options of(
            String model,
            Map<String, Object> rawFieldMap,
            String inputType,
            boolean ignoreMissing,
            boolean checkIndex,
            Map<String, Object> rawChunking
        ) {
            try {
                ModelRegistry.validateName(model);
            } catch (IllegalArgumentException e) {
                throw new ConfigException("model", e.getMessage());
            }
            if (rawFieldMap.isEmpty()) {
                throw new ConfigException("field_map", "must map at least one source field to a target field");
            }
            Map<String, String> fieldMap = new LinkedHashMap<>();
            for (Map.Entry<String, Object> e : rawFieldMap.entrySet()) {
                if (!(e.getValue() instanceof String target) || target.isEmpty()) {
                    throw new ConfigException("field_map", "target of [" + e.getKey() + "] must be a field name, got [" + e.getValue() + "]");
                }
                fieldMap.put(e.getKey(), target);
            }
            InputType type;
            try {
                type = InputType.parse(inputType);
            } catch (IllegalArgumentException e) {
                throw new ConfigException("input_type", e.getMessage());
            }
            return new Options(model, java.util.Collections.unmodifiableMap(fieldMap), type, ignoreMissing, checkIndex, chunking(rawChunking));
        }

        private static Chunking.Settings chunking(Map<String, Object> raw) {
            if (raw == null) {
                return null;
            }
            Set<String> unknown = new java.util.TreeSet<>(raw.keySet());
            unknown.removeAll(Set.of("max_tokens", "overlap_tokens"));
            if (unknown.isEmpty() == false) {
                throw new ConfigException("chunking", "takes max_tokens and overlap_tokens, not " + unknown);
            }
            try {
                return new Chunking.Settings(integer(raw, "max_tokens", null), integer(raw, "overlap_tokens", 0));
            } catch (IllegalArgumentException e) {
                throw new ConfigException("chunking", e.getMessage());
            }
        }

        private static int integer(Map<String, Object> raw, String key, Integer missing) {
            Object value = raw.get(key);
            if (value == null && missing != null) {
                return missing;
            }
            if (value instanceof Integer || value instanceof Long) {
                return ((Number) value).intValue();
            }
            throw new ConfigException("chunking", key + " must be an integer, got [" + value + "]");
        }
    }

    private final Options options;
    private final BatchedEmbed embed;
    private final StampLookup stamps;

    public FieldEmbedder(Options options, BatchedEmbed embed, StampLookup stamps) {
        this.options = options;
        this.embed = embed;
        this.stamps = stamps;
    }

    public Options options() {
        return options;
    }

    /** Embeds the document's fields; {@code done} gets null on success (the document is updated), else the error. */
    public void execute(Document document, Consumer<Exception> done) {
        String model = options.model();
        List<String> targets = new ArrayList<>();
        List<String> texts = new ArrayList<>();
        for (Map.Entry<String, String> e : options.fieldMap().entrySet()) {
            String field = e.getKey();
            Object value = document.get(field);
            if (value == null || (value instanceof String s && s.isBlank())) {
                if (options.ignoreMissing()) {
                    continue;
                }
                done.accept(
                    new IllegalArgumentException(
                        "["
                            + TYPE
                            + "] field ["
                            + field
                            + "] is "
                            + (value == null ? "missing or null" : "empty")
                            + " (model ["
                            + model
                            + "]); set ignore_missing to skip such documents"
                    )
                );
                return;
            }
            if (value instanceof String == false) {
                done.accept(
                    new IllegalArgumentException(
                        "["
                            + TYPE
                            + "] field ["
                            + field
                            + "] is of type ["
                            + value.getClass().getSimpleName()
                            + "], not a string (model ["
                            + model
                            + "])"
                    )
                );
                return;
            }
            targets.add(e.getValue());
            texts.add((String) value);
        }
        if (texts.isEmpty()) {
            done.accept(null);
            return;
        }
        List<Piece> pieces = new ArrayList<>();
        for (int f = 0; f < texts.size(); f++) {
            String text = texts.get(f);
            if (options.chunking() == null) {
                pieces.add(new Piece(f, null, text));
                continue;
            }
            List<Chunking.Span> spans;
            try {
                spans = embed.passages(model, text, options.chunking());
            } catch (Exception ex) {
                done.accept(ex);
                return;
            }
            if (spans.isEmpty()) {
                done.accept(new IllegalArgumentException("[" + TYPE + "] field [" + fieldOf(targets.get(f)) + "] has no text to embed (model [" + model + "])"));
                return;
            }
            for (Chunking.Span span : spans) {
                pieces.add(new Piece(f, span, Chunking.slice(text, span)));
            }
        }
        int n = pieces.size();
        AtomicReferenceArray<Embedding> results = new AtomicReferenceArray<>(n);
        AtomicInteger remaining = new AtomicInteger(n);
        AtomicBoolean finished = new AtomicBoolean();
        for (int i = 0; i < n; i++) {
            int slot = i;
            embed.embedBatched(model, pieces.get(i).text(), options.inputType(), new Listener<>() {
                @Override
                public void onResponse(Embedding embedding) {
                    results.set(slot, embedding);
                    if (remaining.decrementAndGet() == 0 && finished.compareAndSet(false, true)) {
                        complete(document, targets, pieces, results, done);
                    }
                }

                @Override
                public void onFailure(Exception e) {
                    if (finished.compareAndSet(false, true)) {
                        done.accept(e);
                    }
                }
            });
        }
    }

    /** One text to embed: a whole field's ({@code span} null) or one passage of it. */
    private record Piece(int field, Chunking.Span span, String text) {}

    private String fieldOf(String target) {
        for (Map.Entry<String, String> e : options.fieldMap().entrySet()) {
            if (e.getValue().equals(target)) {
                return e.getKey();
            }
        }
        return target;
    }

    private void complete(
        Document document,
        List<String> targets,
        List<Piece> pieces,
        AtomicReferenceArray<Embedding> results,
        Consumer<Exception> done
    ) {
        try {
            if (options.checkIndex()) {
                String index = document.index();
                Map<String, Object> stamp = index == null ? null : stamps.stamp(index);
                ModelManifest manifest = results.get(0).manifest();
                String problem = stamp == null ? null : IndexStamp.mismatch(index, stamp, manifest);
                if (problem == null && stamp != null) {
                    problem = IndexStamp.chunkingMismatch(index, stamp, options.chunking());
                }
                if (problem != null) {
                    done.accept(new IllegalArgumentException("[" + TYPE + "] model [" + options.model() + "]: " + problem));
                    return;
                }
            }
            List<List<Map<String, Object>>> passages = new ArrayList<>();
            boolean[] truncated = new boolean[targets.size()];
            for (int f = 0; f < targets.size(); f++) {
                passages.add(new ArrayList<>());
            }
            for (int i = 0; i < pieces.size(); i++) {
                Piece piece = pieces.get(i);
                Embedding embedding = results.get(i);
                truncated[piece.field()] |= embedding.truncated();
                if (piece.span() == null) {
                    document.set(targets.get(piece.field()), vector(embedding));
                } else {
                    Map<String, Object> passage = new java.util.LinkedHashMap<>();
                    passage.put("start", piece.span().start());
                    passage.put("end", piece.span().end());
                    passage.put(IndexStamp.VECTOR_FIELD, vector(embedding));
                    passages.get(piece.field()).add(passage);
                }
            }
            for (int f = 0; f < targets.size(); f++) {
                if (options.chunking() != null) {
                    document.set(targets.get(f), passages.get(f));
                }
                if (truncated[f]) {
                    document.set(targets.get(f) + TRUNCATED_SUFFIX, true);
                }
            }
        } catch (Exception e) {
            done.accept(e);
            return;
        }
        done.accept(null);
    }

    private static List<Float> vector(Embedding embedding) {
        float[] vector = embedding.vector();
        List<Float> list = new ArrayList<>(vector.length);
        for (float f : vector) {
            list.add(f);
        }
        return list;
    }
}

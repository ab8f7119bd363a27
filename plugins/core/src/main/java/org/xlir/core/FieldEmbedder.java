package org.xlir.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * What the {@code xlir_embed} ingest processor does, for both engines: checks each source field,
 * embeds its text through the model's micro-batch, checks the index's model stamp and writes the
 * vectors (and {@code <target>_truncated: true} for a cut text). Errors are per document and name
 * the field or the model. The adapters' processors only wrap their engine's document and options.
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
    @FunctionalInterface
    public interface BatchedEmbed {
        void embedBatched(String model, String text, InputType type, Listener<Embedding> listener);

        /** The service once the node has created it (processors are made before the plugin's components). */
        static BatchedEmbed lazy(Supplier<? extends BatchedEmbed> service) {
            return (model, text, type, listener) -> {
                BatchedEmbed started = service.get();
                if (started == null) {
                    listener.onFailure(new IllegalStateException("[" + TYPE + "] the xlir plugin is not started"));
                    return;
                }
                started.embedBatched(model, text, type, listener);
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

    /** The processor's options, checked. */
    public record Options(String model, Map<String, String> fieldMap, InputType inputType, boolean ignoreMissing, boolean checkIndex) {

        /** Validates options already read from the pipeline's JSON; throws {@link ConfigException}. */
        public static Options of(String model, Map<String, Object> rawFieldMap, String inputType, boolean ignoreMissing, boolean checkIndex) {
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
            return new Options(model, java.util.Collections.unmodifiableMap(fieldMap), type, ignoreMissing, checkIndex);
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
        int n = texts.size();
        AtomicReferenceArray<Embedding> results = new AtomicReferenceArray<>(n);
        AtomicInteger remaining = new AtomicInteger(n);
        AtomicBoolean finished = new AtomicBoolean();
        for (int i = 0; i < n; i++) {
            int slot = i;
            embed.embedBatched(model, texts.get(i), options.inputType(), new Listener<>() {
                @Override
                public void onResponse(Embedding embedding) {
                    results.set(slot, embedding);
                    if (remaining.decrementAndGet() == 0 && finished.compareAndSet(false, true)) {
                        complete(document, targets, results, done);
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

    private void complete(Document document, List<String> targets, AtomicReferenceArray<Embedding> results, Consumer<Exception> done) {
        try {
            if (options.checkIndex()) {
                String index = document.index();
                Map<String, Object> stamp = index == null ? null : stamps.stamp(index);
                ModelManifest manifest = results.get(0).manifest();
                String problem = stamp == null ? null : IndexStamp.mismatch(index, stamp, manifest);
                if (problem != null) {
                    done.accept(new IllegalArgumentException("[" + TYPE + "] model [" + options.model() + "]: " + problem));
                    return;
                }
            }
            for (int i = 0; i < targets.size(); i++) {
                Embedding embedding = results.get(i);
                float[] vector = embedding.vector();
                List<Float> list = new ArrayList<>(vector.length);
                for (float f : vector) {
                    list.add(f);
                }
                document.set(targets.get(i), list);
                if (embedding.truncated()) {
                    document.set(targets.get(i) + TRUNCATED_SUFFIX, true);
                }
            }
        } catch (Exception e) {
            done.accept(e);
            return;
        }
        done.accept(null);
    }
}

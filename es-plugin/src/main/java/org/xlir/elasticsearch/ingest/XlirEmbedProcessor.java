package org.xlir.elasticsearch.ingest;

import org.elasticsearch.action.ActionListener;
import org.elasticsearch.cluster.metadata.ProjectId;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.ingest.AbstractProcessor;
import org.elasticsearch.ingest.ConfigurationUtils;
import org.elasticsearch.ingest.IngestDocument;
import org.elasticsearch.ingest.Processor;
import org.xlir.elasticsearch.inference.Embedding;
import org.xlir.elasticsearch.inference.InferenceService;
import org.xlir.elasticsearch.model.IndexStamp;
import org.xlir.elasticsearch.model.InputType;
import org.xlir.elasticsearch.model.ModelManifest;
import org.xlir.elasticsearch.model.ModelRegistry;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Supplier;

/**
 * {@code xlir_embed}: writes the model's vector of each source text field into its target field.
 *
 * <pre>
 * {"xlir_embed": {"model": "default", "field_map": {"text": "embedding"},
 *                 "input_type": "passage", "ignore_missing": false}}
 * </pre>
 *
 * Asynchronous: the document's texts join the model's micro-batch on the plugin's thread pool,
 * so the documents of one bulk request are encoded together. A text longer than the model's
 * max length is truncated, and {@code <target>_truncated: true} is set on the document (the
 * field is absent otherwise). When the document's index carries an XLIR model stamp
 * ({@code _meta.xlir}) it must match the model ({@code check_index}, default true).
 */
public final class XlirEmbedProcessor extends AbstractProcessor {

    public static final String TYPE = "xlir_embed";
    public static final String TRUNCATED_SUFFIX = "_truncated";

    private final Supplier<InferenceService> service;
    private final IndexStampLookup stamps;
    private final ProjectId projectId;
    private final String model;
    private final Map<String, String> fieldMap;
    private final InputType inputType;
    private final boolean ignoreMissing;
    private final boolean checkIndex;

    XlirEmbedProcessor(
        String tag,
        String description,
        Supplier<InferenceService> service,
        IndexStampLookup stamps,
        ProjectId projectId,
        String model,
        Map<String, String> fieldMap,
        InputType inputType,
        boolean ignoreMissing,
        boolean checkIndex
    ) {
        super(tag, description);
        this.service = service;
        this.stamps = stamps;
        this.projectId = projectId;
        this.model = model;
        this.fieldMap = fieldMap;
        this.inputType = inputType;
        this.ignoreMissing = ignoreMissing;
        this.checkIndex = checkIndex;
    }

    @Override
    public String getType() {
        return TYPE;
    }

    @Override
    public boolean isAsync() {
        return true;
    }

    public String getModel() {
        return model;
    }

    public Map<String, String> getFieldMap() {
        return fieldMap;
    }

    @Override
    public void execute(IngestDocument document, java.util.function.BiConsumer<IngestDocument, Exception> handler) {
        List<String> sources = new ArrayList<>();
        List<String> targets = new ArrayList<>();
        List<String> texts = new ArrayList<>();
        for (Map.Entry<String, String> e : fieldMap.entrySet()) {
            String field = e.getKey();
            Object value;
            try {
                value = document.getFieldValue(field, Object.class, true);
            } catch (IllegalArgumentException ex) { // e.g. a path through a non-object
                value = null;
            }
            if (value == null || (value instanceof String s && s.isBlank())) {
                if (ignoreMissing) {
                    continue;
                }
                handler.accept(
                    null,
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
                handler.accept(
                    null,
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
            sources.add(field);
            targets.add(e.getValue());
            texts.add((String) value);
        }
        if (texts.isEmpty()) {
            handler.accept(document, null);
            return;
        }
        InferenceService inference = service.get();
        if (inference == null) {
            handler.accept(null, new IllegalStateException("[" + TYPE + "] the xlir plugin is not started"));
            return;
        }
        int n = texts.size();
        AtomicReferenceArray<Embedding> results = new AtomicReferenceArray<>(n);
        AtomicInteger remaining = new AtomicInteger(n);
        AtomicBoolean done = new AtomicBoolean();
        for (int i = 0; i < n; i++) {
            int slot = i;
            inference.embedBatched(model, texts.get(i), inputType, new ActionListener<>() {
                @Override
                public void onResponse(Embedding embedding) {
                    results.set(slot, embedding);
                    if (remaining.decrementAndGet() == 0 && done.compareAndSet(false, true)) {
                        complete(document, targets, results, handler);
                    }
                }

                @Override
                public void onFailure(Exception e) {
                    if (done.compareAndSet(false, true)) {
                        handler.accept(null, e);
                    }
                }
            });
        }
    }

    private void complete(
        IngestDocument document,
        List<String> targets,
        AtomicReferenceArray<Embedding> results,
        java.util.function.BiConsumer<IngestDocument, Exception> handler
    ) {
        try {
            if (checkIndex) {
                String index = document.getMetadata().getIndex();
                Map<String, Object> stamp = stamps.stamp(projectId, index);
                ModelManifest manifest = results.get(0).manifest();
                String problem = stamp == null ? null : IndexStamp.mismatch(index, stamp, manifest);
                if (problem != null) {
                    handler.accept(null, new IllegalArgumentException("[" + TYPE + "] model [" + model + "]: " + problem));
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
                document.setFieldValue(targets.get(i), list);
                if (embedding.truncated()) {
                    document.setFieldValue(targets.get(i) + TRUNCATED_SUFFIX, true);
                }
            }
        } catch (Exception e) {
            handler.accept(null, e);
            return;
        }
        handler.accept(document, null);
    }

    public static final class Factory implements Processor.Factory {

        private final Supplier<InferenceService> service;
        private final IndexStampLookup stamps;

        public Factory(Supplier<InferenceService> service, ClusterService clusterService) {
            this.service = service;
            this.stamps = new IndexStampLookup(clusterService);
        }

        @Override
        public XlirEmbedProcessor create(
            Map<String, Processor.Factory> registry,
            String tag,
            String description,
            Map<String, Object> config,
            ProjectId projectId
        ) {
            String model = ConfigurationUtils.readStringProperty(TYPE, tag, config, "model");
            try {
                ModelRegistry.validateName(model);
            } catch (IllegalArgumentException e) {
                throw ConfigurationUtils.newConfigurationException(TYPE, tag, "model", e.getMessage());
            }
            Map<String, Object> rawMap = ConfigurationUtils.readMap(TYPE, tag, config, "field_map");
            if (rawMap.isEmpty()) {
                throw ConfigurationUtils.newConfigurationException(TYPE, tag, "field_map", "must map at least one source field to a target field");
            }
            Map<String, String> fieldMap = new LinkedHashMap<>();
            for (Map.Entry<String, Object> e : rawMap.entrySet()) {
                if (!(e.getValue() instanceof String target) || target.isEmpty()) {
                    throw ConfigurationUtils.newConfigurationException(
                        TYPE,
                        tag,
                        "field_map",
                        "target of [" + e.getKey() + "] must be a field name, got [" + e.getValue() + "]"
                    );
                }
                fieldMap.put(e.getKey(), target);
            }
            String inputTypeName = ConfigurationUtils.readStringProperty(TYPE, tag, config, "input_type", "passage");
            InputType inputType;
            try {
                inputType = InputType.parse(inputTypeName);
            } catch (IllegalArgumentException e) {
                throw ConfigurationUtils.newConfigurationException(TYPE, tag, "input_type", e.getMessage());
            }
            boolean ignoreMissing = ConfigurationUtils.readBooleanProperty(TYPE, tag, config, "ignore_missing", false);
            boolean checkIndex = ConfigurationUtils.readBooleanProperty(TYPE, tag, config, "check_index", true);
            return new XlirEmbedProcessor(
                tag,
                description,
                service,
                stamps,
                projectId,
                model,
                fieldMap,
                inputType,
                ignoreMissing,
                checkIndex
            );
        }
    }
}

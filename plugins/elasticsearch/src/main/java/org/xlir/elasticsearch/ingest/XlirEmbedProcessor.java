package org.xlir.elasticsearch.ingest;

import org.elasticsearch.cluster.metadata.ProjectId;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.ingest.AbstractProcessor;
import org.elasticsearch.ingest.ConfigurationUtils;
import org.elasticsearch.ingest.IngestDocument;
import org.elasticsearch.ingest.Processor;
import org.xlir.core.FieldEmbedder;
import org.xlir.elasticsearch.inference.InferenceService;

import java.util.Map;
import java.util.function.BiConsumer;
import java.util.function.Supplier;

/**
 * {@code xlir_embed}: writes the model's vector of each source text field into its target field.
 *
 * <pre>
 * {"xlir_embed": {"model": "default", "field_map": {"text": "embedding"},
 *                 "input_type": "passage", "ignore_missing": false,
 *                 "chunking": {"max_tokens": 128, "overlap_tokens": 0}}}   (optional: passages)
 * </pre>
 *
 * Asynchronous: the document's texts join the model's micro-batch on the plugin's thread pool,
 * so the documents of one bulk request are encoded together. What it does per document (errors,
 * truncation flag, index stamp check) is core's {@link FieldEmbedder}, shared with OpenSearch;
 * this class wraps Elasticsearch's document and configuration.
 */
public final class XlirEmbedProcessor extends AbstractProcessor {

    public static final String TYPE = FieldEmbedder.TYPE;

    private final FieldEmbedder embedder;

    XlirEmbedProcessor(String tag, String description, FieldEmbedder embedder) {
        super(tag, description);
        this.embedder = embedder;
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
        return embedder.options().model();
    }

    public Map<String, String> getFieldMap() {
        return embedder.options().fieldMap();
    }

    @Override
    public void execute(IngestDocument document, BiConsumer<IngestDocument, Exception> handler) {
        embedder.execute(new FieldEmbedder.Document() {
            @Override
            public Object get(String field) {
                try {
                    return document.getFieldValue(field, Object.class, true);
                } catch (IllegalArgumentException e) { // e.g. a path through a non-object
                    return null;
                }
            }

            @Override
            public void set(String field, Object value) {
                document.setFieldValue(field, value);
            }

            @Override
            public String index() {
                return document.getMetadata().getIndex();
            }
        }, e -> handler.accept(e == null ? document : null, e));
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
            FieldEmbedder.Options options;
            try {
                options = FieldEmbedder.Options.of(
                    ConfigurationUtils.readStringProperty(TYPE, tag, config, "model"),
                    ConfigurationUtils.readMap(TYPE, tag, config, "field_map"),
                    ConfigurationUtils.readStringProperty(TYPE, tag, config, "input_type", "passage"),
                    ConfigurationUtils.readBooleanProperty(TYPE, tag, config, "ignore_missing", false),
                    ConfigurationUtils.readBooleanProperty(TYPE, tag, config, "check_index", true),
                    ConfigurationUtils.readOptionalMap(TYPE, tag, config, "chunking")
                );
            } catch (FieldEmbedder.ConfigException e) {
                throw ConfigurationUtils.newConfigurationException(TYPE, tag, e.property(), e.getMessage());
            }
            return new XlirEmbedProcessor(tag, description, new FieldEmbedder(options, FieldEmbedder.BatchedEmbed.lazy(service), index -> stamps.stamp(projectId, index)));
        }
    }
}

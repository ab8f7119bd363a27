package org.xlir.opensearch.ingest;

import org.opensearch.cluster.service.ClusterService;
import org.opensearch.ingest.AbstractProcessor;
import org.opensearch.ingest.ConfigurationUtils;
import org.opensearch.ingest.IngestDocument;
import org.opensearch.ingest.Processor;
import org.xlir.core.FieldEmbedder;
import org.xlir.opensearch.inference.InferenceService;

import java.util.Map;
import java.util.function.BiConsumer;
import java.util.function.Supplier;

/**
 * {@code xlir_embed} on OpenSearch: the same options, per-document errors and truncation flag as
 * the Elasticsearch processor, because both are core's {@link FieldEmbedder}; this class wraps
 * OpenSearch's document and configuration. Asynchronous (OpenSearch calls the two-argument
 * {@code execute}): texts join the model's micro-batch on {@code xlir_inference}.
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

    public FieldEmbedder.Options options() {
        return embedder.options();
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
                return document.getSourceAndMetadata().get(IngestDocument.Metadata.INDEX.getFieldName()) instanceof String s ? s : null;
            }
        }, e -> handler.accept(e == null ? document : null, e));
    }

    /** Never called by the node (the asynchronous {@code execute} is); embedding blocks no ingest thread. */
    @Override
    public IngestDocument execute(IngestDocument document) {
        throw new UnsupportedOperationException("[" + TYPE + "] runs asynchronously");
    }

    public static final class Factory implements Processor.Factory {

        private final Supplier<InferenceService> service;
        private final IndexStampLookup stamps;

        public Factory(Supplier<InferenceService> service, ClusterService clusterService) {
            this.service = service;
            this.stamps = new IndexStampLookup(clusterService);
        }

        @Override
        public XlirEmbedProcessor create(Map<String, Processor.Factory> registry, String tag, String description, Map<String, Object> config) {
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
            return new XlirEmbedProcessor(tag, description, new FieldEmbedder(options, FieldEmbedder.BatchedEmbed.lazy(service), stamps::stamp));
        }
    }
}

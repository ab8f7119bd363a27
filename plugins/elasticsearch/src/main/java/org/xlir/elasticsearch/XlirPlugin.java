package org.xlir.elasticsearch;

import org.apache.lucene.util.SetOnce;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Setting;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.common.util.concurrent.EsExecutors;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.ingest.Processor;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.IngestPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.SearchPlugin;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.threadpool.ExecutorBuilder;
import org.elasticsearch.threadpool.FixedExecutorBuilder;
import org.xlir.core.FieldEmbedder;
import org.xlir.core.ModelRegistry;
import org.xlir.core.NativeRuntime;
import org.xlir.core.XlirDefaults;
import org.xlir.core.XlirModel;
import org.xlir.elasticsearch.inference.InferenceService;
import org.xlir.elasticsearch.ingest.XlirEmbedProcessor;
import org.xlir.elasticsearch.rest.RestEmbedAction;
import org.xlir.elasticsearch.rest.RestModelsAction;
import org.xlir.elasticsearch.search.XlirQueryVectorBuilder;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.function.Supplier;

/**
 * XLIR in Elasticsearch: the {@code xlir_embed} ingest processor, the {@code xlir} query vector
 * builder and the {@code _xlir/embed} / {@code _xlir/models} REST endpoints, all backed by one
 * {@link InferenceService} that loads exported models from {@code <config>/xlir/models/<name>/}.
 * A thin adapter: models, tokenizer, onnxruntime and batching are core's ({@code org.xlir.core}).
 */
public class XlirPlugin extends Plugin implements IngestPlugin, SearchPlugin, ActionPlugin {

    private final Settings settings;
    private final SetOnce<InferenceService> inference = new SetOnce<>();
    private final Supplier<InferenceService> service = inference::get;

    public XlirPlugin(Settings settings) {
        this.settings = settings;
    }

    @Override
    public List<Setting<?>> getSettings() {
        return XlirSettings.all();
    }

    @Override
    public List<ExecutorBuilder<?>> getExecutorBuilders(Settings settings) {
        int size = XlirDefaults.defaultPoolSize(EsExecutors.allocatedProcessors(settings));
        return List.of(
            new FixedExecutorBuilder(
                settings,
                XlirDefaults.THREAD_POOL_NAME,
                size,
                XlirDefaults.POOL_QUEUE_SIZE,
                "thread_pool." + XlirDefaults.THREAD_POOL_NAME,
                EsExecutors.TaskTrackingConfig.DO_NOT_TRACK
            ),
            new FixedExecutorBuilder(
                settings,
                XlirDefaults.SEARCH_THREAD_POOL_NAME,
                size,
                XlirDefaults.POOL_QUEUE_SIZE,
                "thread_pool." + XlirDefaults.SEARCH_THREAD_POOL_NAME,
                EsExecutors.TaskTrackingConfig.DO_NOT_TRACK
            )
        );
    }

    @Override
    public Collection<?> createComponents(PluginServices services) {
        Settings nodeSettings = services.environment().settings();
        NativeRuntime.configure(services.environment().tmpDir());
        int processors = EsExecutors.allocatedProcessors(nodeSettings);
        int poolSize = services.threadPool().info(XlirDefaults.THREAD_POOL_NAME).getMax();
        int intraOp = XlirDefaults.intraOpThreads(XlirSettings.INTRA_OP_THREADS.get(nodeSettings), processors, poolSize);
        int runBatch = XlirSettings.RUN_BATCH_SIZE.get(nodeSettings);
        int runTokens = XlirSettings.RUN_MAX_TOKENS.get(nodeSettings);
        Path modelsDir = services.environment().configDir().resolve("xlir").resolve("models");
        ModelRegistry registry = new ModelRegistry(
            modelsDir,
            (name, dir, manifest) -> NativeRuntime.withPluginClassLoader(() -> XlirModel.load(name, dir, manifest, intraOp, runBatch, runTokens))
        );
        InferenceService service = new InferenceService(
            services.threadPool(),
            registry,
            XlirSettings.INGEST_BATCH_SIZE.get(nodeSettings),
            XlirSettings.INGEST_BATCH_WAIT.get(nodeSettings),
            XlirSettings.INGEST_MAX_QUEUED.get(nodeSettings)
        );
        inference.set(service);
        return List.of(service);
    }

    @Override
    public Map<String, Processor.Factory> getProcessors(Processor.Parameters parameters) {
        return Map.of(
            FieldEmbedder.TYPE,
            new XlirEmbedProcessor.Factory(service, parameters.ingestService == null ? null : parameters.ingestService.getClusterService())
        );
    }

    @Override
    public List<QueryVectorBuilderSpec<?>> getQueryVectorBuilders() {
        return List.of(
            new QueryVectorBuilderSpec<>(
                XlirQueryVectorBuilder.NAME,
                in -> new XlirQueryVectorBuilder(in, service),
                (parser, context) -> XlirQueryVectorBuilder.fromXContent(parser, service)
            )
        );
    }

    @Override
    public Collection<RestHandler> getRestHandlers(
        Settings settings,
        NamedWriteableRegistry namedWriteableRegistry,
        RestController restController,
        ClusterSettings clusterSettings,
        IndexScopedSettings indexScopedSettings,
        SettingsFilter settingsFilter,
        IndexNameExpressionResolver indexNameExpressionResolver,
        Supplier<DiscoveryNodes> nodesInCluster,
        Predicate<NodeFeature> clusterSupportsFeature
    ) {
        return List.of(new RestEmbedAction(service, XlirSettings.REST_MAX_TEXTS.get(settings)), new RestModelsAction(service));
    }

    @Override
    public void close() throws IOException {
        InferenceService s = inference.get();
        if (s != null) {
            s.close();
        }
    }
}

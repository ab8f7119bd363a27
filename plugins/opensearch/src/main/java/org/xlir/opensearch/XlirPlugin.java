package org.xlir.opensearch;

import org.apache.lucene.util.SetOnce;
import org.opensearch.cluster.metadata.IndexNameExpressionResolver;
import org.opensearch.cluster.node.DiscoveryNodes;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.settings.ClusterSettings;
import org.opensearch.common.settings.IndexScopedSettings;
import org.opensearch.common.settings.Setting;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.settings.SettingsFilter;
import org.opensearch.common.util.concurrent.OpenSearchExecutors;
import org.opensearch.core.common.io.stream.NamedWriteableRegistry;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.env.Environment;
import org.opensearch.env.NodeEnvironment;
import org.opensearch.ingest.Processor;
import org.opensearch.plugins.ActionPlugin;
import org.opensearch.plugins.IngestPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.SearchPlugin;
import org.opensearch.repositories.RepositoriesService;
import org.opensearch.rest.RestController;
import org.opensearch.rest.RestHandler;
import org.opensearch.script.ScriptService;
import org.opensearch.threadpool.ExecutorBuilder;
import org.opensearch.threadpool.FixedExecutorBuilder;
import org.opensearch.threadpool.ThreadPool;
import org.opensearch.transport.client.Client;
import org.opensearch.watcher.ResourceWatcherService;
import org.xlir.core.FieldEmbedder;
import org.xlir.core.ModelRegistry;
import org.xlir.core.NativeRuntime;
import org.xlir.core.XlirDefaults;
import org.xlir.core.XlirModel;
import org.xlir.opensearch.inference.InferenceService;
import org.xlir.opensearch.ingest.XlirEmbedProcessor;
import org.xlir.opensearch.rest.RestEmbedAction;
import org.xlir.opensearch.rest.RestModelsAction;
import org.xlir.opensearch.search.XlirKnnQueryBuilder;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * XLIR in OpenSearch: the {@code xlir_embed} ingest processor, the {@code xlir_knn} text query
 * (rewritten into the k-NN plugin's {@code knn} query) and the {@code _xlir/embed} /
 * {@code _xlir/models} REST endpoints, backed by one {@link InferenceService} that loads exported
 * models from {@code <config>/xlir/models/<name>/}. A thin adapter: models, tokenizer,
 * onnxruntime, batching and the processor/REST logic are core's ({@code org.xlir.core}), the same
 * code as the Elasticsearch plugin's.
 */
public class XlirPlugin extends Plugin implements IngestPlugin, SearchPlugin, ActionPlugin {

    private final SetOnce<InferenceService> inference = new SetOnce<>();
    private final Supplier<InferenceService> service = inference::get;

    @Override
    public List<Setting<?>> getSettings() {
        return XlirSettings.all();
    }

    @Override
    public List<ExecutorBuilder<?>> getExecutorBuilders(Settings settings) {
        int size = XlirDefaults.defaultPoolSize(OpenSearchExecutors.allocatedProcessors(settings));
        return List.of(
            new FixedExecutorBuilder(
                settings,
                XlirDefaults.THREAD_POOL_NAME,
                size,
                XlirDefaults.POOL_QUEUE_SIZE,
                "thread_pool." + XlirDefaults.THREAD_POOL_NAME
            ),
            new FixedExecutorBuilder(
                settings,
                XlirDefaults.SEARCH_THREAD_POOL_NAME,
                size,
                XlirDefaults.POOL_QUEUE_SIZE,
                "thread_pool." + XlirDefaults.SEARCH_THREAD_POOL_NAME
            )
        );
    }

    @Override
    public Collection<Object> createComponents(
        Client client,
        ClusterService clusterService,
        ThreadPool threadPool,
        ResourceWatcherService resourceWatcherService,
        ScriptService scriptService,
        NamedXContentRegistry xContentRegistry,
        Environment environment,
        NodeEnvironment nodeEnvironment,
        NamedWriteableRegistry namedWriteableRegistry,
        IndexNameExpressionResolver indexNameExpressionResolver,
        Supplier<RepositoriesService> repositoriesServiceSupplier
    ) {
        Settings nodeSettings = environment.settings();
        NativeRuntime.configure(environment.tmpDir());
        int processors = OpenSearchExecutors.allocatedProcessors(nodeSettings);
        int poolSize = threadPool.info(XlirDefaults.THREAD_POOL_NAME).getMax();
        int intraOp = XlirDefaults.intraOpThreads(XlirSettings.INTRA_OP_THREADS.get(nodeSettings), processors, poolSize);
        int runBatch = XlirSettings.RUN_BATCH_SIZE.get(nodeSettings);
        int runTokens = XlirSettings.RUN_MAX_TOKENS.get(nodeSettings);
        Path modelsDir = environment.configDir().resolve("xlir").resolve("models");
        ModelRegistry registry = new ModelRegistry(
            modelsDir,
            (name, dir, manifest) -> NativeRuntime.withPluginClassLoader(() -> XlirModel.load(name, dir, manifest, intraOp, runBatch, runTokens))
        );
        InferenceService created = new InferenceService(
            threadPool,
            registry,
            XlirSettings.INGEST_BATCH_SIZE.get(nodeSettings),
            XlirSettings.INGEST_BATCH_WAIT.get(nodeSettings),
            XlirSettings.INGEST_MAX_QUEUED.get(nodeSettings)
        );
        inference.set(created);
        return List.of(created);
    }

    @Override
    public Map<String, Processor.Factory> getProcessors(Processor.Parameters parameters) {
        return Map.of(
            FieldEmbedder.TYPE,
            new XlirEmbedProcessor.Factory(service, parameters.ingestService == null ? null : parameters.ingestService.getClusterService())
        );
    }

    @Override
    public List<QuerySpec<?>> getQueries() {
        return List.of(
            new QuerySpec<>(
                XlirKnnQueryBuilder.NAME,
                in -> new XlirKnnQueryBuilder(in, service),
                parser -> XlirKnnQueryBuilder.fromXContent(parser, service)
            )
        );
    }

    @Override
    public List<RestHandler> getRestHandlers(
        Settings settings,
        RestController restController,
        ClusterSettings clusterSettings,
        IndexScopedSettings indexScopedSettings,
        SettingsFilter settingsFilter,
        IndexNameExpressionResolver indexNameExpressionResolver,
        Supplier<DiscoveryNodes> nodesInCluster
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

package org.xlir.elasticsearch.rest;

import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestRequest;
import org.xlir.core.ModelRegistry;
import org.xlir.core.ModelsReport;
import org.xlir.elasticsearch.inference.InferenceService;

import java.io.IOException;
import java.util.List;
import java.util.function.Supplier;

/**
 * {@code GET _xlir/models} and {@code GET _xlir/models/{model}}: the models installed on this
 * node (from their xlir.json; nothing is loaded), the plugin's runtime versions and ingest
 * counters; {@code ?index=NAME} adds the index's model stamp and, per model,
 * {@code matches_index}. The body is core's {@link ModelsReport}, built on {@code xlir_search}.
 */
public final class RestModelsAction extends BaseRestHandler {

    private final Supplier<InferenceService> service;

    public RestModelsAction(Supplier<InferenceService> service) {
        this.service = service;
    }

    @Override
    public String getName() {
        return "xlir_models_action";
    }

    @Override
    public List<Route> routes() {
        return List.of(new Route(RestRequest.Method.GET, "/_xlir/models"), new Route(RestRequest.Method.GET, "/_xlir/models/{model}"));
    }

    @Override
    protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) throws IOException {
        String only = request.param("model");
        if (only != null) {
            ModelRegistry.validateName(only);
        }
        String index = request.param("index");
        InferenceService inference = service.get();
        if (inference == null) {
            throw new IllegalStateException("the xlir plugin is not started");
        }
        return channel -> ModelsReport.run(inference.core(), only, index, IndexStampFetcher.of(client), MapResponse.to(channel));
    }
}

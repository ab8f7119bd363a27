package org.xlir.opensearch.rest;

import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.rest.BaseRestHandler;
import org.opensearch.rest.RestRequest;
import org.opensearch.transport.client.node.NodeClient;
import org.xlir.core.EmbedRequest;
import org.xlir.opensearch.inference.InferenceService;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * {@code POST _xlir/embed}: the same request and answer as the Elasticsearch plugin's (core's
 * {@link EmbedRequest}); {@code ?index=NAME} refuses (400) a model other than the index's stamp.
 * Encodes on {@code xlir_search}, never on the network thread.
 */
public final class RestEmbedAction extends BaseRestHandler {

    private final Supplier<InferenceService> service;
    private final int maxTexts;

    public RestEmbedAction(Supplier<InferenceService> service, int maxTexts) {
        this.service = service;
        this.maxTexts = maxTexts;
    }

    @Override
    public String getName() {
        return "xlir_embed_action";
    }

    @Override
    public List<Route> routes() {
        return List.of(new Route(RestRequest.Method.POST, "/_xlir/embed"));
    }

    @Override
    protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) throws IOException {
        String indexParam = request.param("index");
        if (request.hasContent() == false) {
            throw new IllegalArgumentException("POST _xlir/embed needs a body: {\"model\": ..., \"texts\": [...], \"input_type\": ...}");
        }
        Map<String, Object> body;
        try (XContentParser parser = request.contentParser()) {
            body = parser.map();
        }
        EmbedRequest embed = EmbedRequest.parse(body, indexParam, maxTexts);
        InferenceService inference = service.get();
        if (inference == null) {
            throw new IllegalStateException("the xlir plugin is not started");
        }
        return channel -> embed.run(inference.core(), IndexStampFetcher.of(client), MapResponse.to(channel));
    }
}

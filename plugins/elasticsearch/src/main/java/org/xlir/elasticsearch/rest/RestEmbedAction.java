package org.xlir.elasticsearch.rest;

import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.xcontent.XContentParser;
import org.xlir.core.EmbedRequest;
import org.xlir.elasticsearch.inference.InferenceService;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * {@code POST _xlir/embed} with {@code {"model": "default", "texts": [...], "input_type": "query"}}
 * answers {@code {"took", "model", "model_name", "dims", "input_type", "vectors": [[...]],
 * "truncated": [...]}} ({@code took}: milliseconds on the node, as in a search response).
 * With {@code ?index=NAME} (or {@code "index"} in the body) the index's model stamp must match
 * the model, else 400 naming both. Body and answer are core's {@link EmbedRequest}.
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
    protected Set<String> responseParams() {
        return Set.of();
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

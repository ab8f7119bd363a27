package org.xlir.elasticsearch.rest;

import org.elasticsearch.action.ActionListener;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.rest.action.RestBuilderListener;
import org.elasticsearch.xcontent.XContentBuilder;
import org.elasticsearch.xcontent.XContentParser;
import org.xlir.elasticsearch.inference.InferenceService;
import org.xlir.elasticsearch.model.EmbeddingResult;
import org.xlir.elasticsearch.model.IndexStamp;
import org.xlir.elasticsearch.model.InputType;
import org.xlir.elasticsearch.model.ModelRegistry;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * {@code POST _xlir/embed} with {@code {"model": "default", "texts": [...], "input_type": "query"}}
 * answers {@code {"took", "model", "model_name", "dims", "input_type", "vectors": [[...]],
 * "truncated": [...]}} ({@code took}: milliseconds on the node, as in a search response).
 * With {@code ?index=NAME} (or {@code "index"} in the body) the index's model stamp must match
 * the model, else 400 naming both.
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
        Set<String> unknown = new java.util.TreeSet<>(body.keySet());
        unknown.removeAll(Set.of("model", "texts", "input_type", "index"));
        if (unknown.isEmpty() == false) {
            throw new IllegalArgumentException("unknown field(s) " + unknown + " in _xlir/embed body; expected model, texts, input_type, index");
        }
        String model = body.getOrDefault("model", "default") instanceof String s ? s : null;
        ModelRegistry.validateName(model);
        Object rawTexts = body.get("texts");
        if (!(rawTexts instanceof List<?> list) || list.isEmpty()) {
            throw new IllegalArgumentException("[texts] must be a non-empty list of strings");
        }
        if (list.size() > maxTexts) {
            throw new IllegalArgumentException("[texts] has " + list.size() + " texts; at most " + maxTexts + " (xlir.rest.max_texts)");
        }
        List<String> texts = new ArrayList<>(list.size());
        for (int i = 0; i < list.size(); i++) {
            if (!(list.get(i) instanceof String t)) {
                throw new IllegalArgumentException("text at index " + i + " is not a string");
            }
            if (t.isBlank()) {
                throw new IllegalArgumentException("text at index " + i + " is empty");
            }
            texts.add(t);
        }
        Object typeValue = body.getOrDefault("input_type", "query");
        InputType type = InputType.parse(typeValue instanceof String s ? s : String.valueOf(typeValue));
        String index = indexParam != null ? indexParam : (body.get("index") instanceof String s ? s : null);
        InferenceService inference = service.get();
        if (inference == null) {
            throw new IllegalStateException("the xlir plugin is not started");
        }
        long start = System.nanoTime();
        return channel -> {
            ActionListener<EmbeddingResult> respond = new RestBuilderListener<>(channel) {
                @Override
                public RestResponse buildResponse(EmbeddingResult result, XContentBuilder builder) throws Exception {
                    builder.startObject();
                    builder.field("took", (System.nanoTime() - start) / 1_000_000);
                    builder.field("model", result.model());
                    builder.field("model_name", result.manifest().modelName());
                    builder.field("dims", result.dims());
                    builder.field("input_type", type.toString());
                    builder.startArray("vectors");
                    for (float[] v : result.vectors()) {
                        builder.startArray();
                        for (float f : v) {
                            builder.value(f);
                        }
                        builder.endArray();
                    }
                    builder.endArray();
                    builder.startArray("truncated");
                    for (boolean t : result.truncated()) {
                        builder.value(t);
                    }
                    builder.endArray();
                    builder.endObject();
                    return new RestResponse(RestStatus.OK, builder);
                }
            };
            if (index == null) {
                inference.embed(model, texts, type, respond);
                return;
            }
            IndexStampFetcher.fetch(
                client,
                index,
                respond.delegateFailureAndWrap(
                    (l, stamp) -> inference.embed(model, texts, type, l.delegateFailureAndWrap((l2, result) -> {
                        String problem = IndexStamp.mismatch(index, stamp, result.manifest());
                        if (problem != null) {
                            throw new IllegalArgumentException("model [" + model + "]: " + problem);
                        }
                        l2.onResponse(result);
                    }))
                )
            );
        };
    }
}

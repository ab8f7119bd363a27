package org.xlir.opensearch.rest;

import org.opensearch.core.rest.RestStatus;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.rest.BytesRestResponse;
import org.opensearch.rest.RestChannel;
import org.opensearch.rest.RestResponse;
import org.opensearch.rest.action.RestBuilderListener;
import org.xlir.core.Listener;

import java.util.Map;

/** Writes core's answer (a map) as the 200 response; a failure becomes the engine's error response. */
final class MapResponse {

    private MapResponse() {}

    static Listener<Map<String, Object>> to(RestChannel channel) {
        RestBuilderListener<Map<String, Object>> respond = new RestBuilderListener<>(channel) {
            @Override
            public RestResponse buildResponse(Map<String, Object> body, XContentBuilder builder) throws Exception {
                builder.map(body);
                return new BytesRestResponse(RestStatus.OK, builder);
            }
        };
        return Listener.of(respond::onResponse, respond::onFailure);
    }
}

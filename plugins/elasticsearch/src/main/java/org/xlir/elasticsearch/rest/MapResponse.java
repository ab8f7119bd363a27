package org.xlir.elasticsearch.rest;

import org.elasticsearch.rest.RestChannel;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.rest.action.RestBuilderListener;
import org.elasticsearch.xcontent.XContentBuilder;
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
                return new RestResponse(RestStatus.OK, builder);
            }
        };
        return Listener.of(respond::onResponse, respond::onFailure);
    }
}

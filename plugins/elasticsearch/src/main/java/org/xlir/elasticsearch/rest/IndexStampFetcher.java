package org.xlir.elasticsearch.rest;

import org.elasticsearch.action.ActionListener;
import org.elasticsearch.action.admin.indices.mapping.get.GetMappingsRequest;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.metadata.MappingMetadata;
import org.elasticsearch.core.TimeValue;
import org.xlir.core.IndexStamp;

import java.util.Map;

/** Reads an index's {@code _meta.xlir} model stamp through the client, as the calling user. */
final class IndexStampFetcher {

    private IndexStampFetcher() {}

    static void fetch(NodeClient client, String index, ActionListener<Map<String, Object>> listener) {
        GetMappingsRequest request = new GetMappingsRequest(TimeValue.timeValueSeconds(30)).indices(index);
        client.admin().indices().getMappings(request, listener.delegateFailureAndWrap((l, response) -> {
            Map<String, MappingMetadata> mappings = response.mappings();
            if (mappings.size() != 1) {
                throw new IllegalArgumentException("[" + index + "] names " + mappings.size() + " indexes; give exactly one index");
            }
            MappingMetadata mapping = mappings.values().iterator().next();
            l.onResponse(IndexStamp.required(index, mapping == null ? null : mapping.sourceAsMap()));
        }));
    }
}

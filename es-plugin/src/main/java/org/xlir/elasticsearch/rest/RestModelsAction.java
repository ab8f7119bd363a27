package org.xlir.elasticsearch.rest;

import org.elasticsearch.ResourceNotFoundException;
import org.elasticsearch.action.ActionListener;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.rest.action.RestBuilderListener;
import org.elasticsearch.xcontent.XContentBuilder;
import org.xlir.elasticsearch.Versions;
import org.xlir.elasticsearch.inference.InferenceService;
import org.xlir.elasticsearch.model.IndexStamp;
import org.xlir.elasticsearch.model.ModelManifest;
import org.xlir.elasticsearch.model.ModelRegistry;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * {@code GET _xlir/models} and {@code GET _xlir/models/{model}}: the models installed on this
 * node (from their xlir.json; nothing is loaded): name, dims, sha256, quantization, encoder
 * settings and provenance, whether it is loaded, and whether the export was made with the
 * plugin's onnxruntime version ({@code runtime} lists the plugin's versions). {@code ?index=NAME} adds the index's model
 * stamp and, per model, {@code matches_index}.
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
        ModelRegistry registry = inference.registry();
        return channel -> {
            ActionListener<Map<String, Object>> respond = new RestBuilderListener<>(channel) {
                @Override
                public RestResponse buildResponse(Map<String, Object> body, XContentBuilder builder) throws Exception {
                    builder.map(body);
                    return new RestResponse(RestStatus.OK, builder);
                }
            };
            ActionListener<Map<String, Object>> withStamp = respond.delegateFailureAndWrap((l, stamp) -> inference.fork(l, () -> {
                Map<String, Object> body = new LinkedHashMap<>();
                List<Object> models = new ArrayList<>();
                List<String> names = only == null ? registry.installed() : List.of(only);
                for (String name : names) {
                    Map<String, Object> entry = new LinkedHashMap<>();
                    entry.put("name", name);
                    try {
                        ModelManifest m = registry.manifest(name);
                        describe(entry, m);
                        entry.put("loaded", registry.isLoaded(name));
                        if (stamp != null) {
                            entry.put("matches_index", IndexStamp.mismatch(index, stamp, m) == null);
                        }
                    } catch (ResourceNotFoundException e) {
                        if (only != null) {
                            throw e;
                        }
                        entry.put("error", e.getMessage());
                    } catch (RuntimeException e) {
                        entry.put("error", e.getMessage());
                    }
                    models.add(entry);
                }
                body.put("models_dir", registry.modelsDir().toString());
                body.put("runtime", new java.util.TreeMap<>(Versions.all()));
                body.put("stats", new java.util.TreeMap<>(inference.stats()));
                if (stamp != null) {
                    Map<String, Object> indexInfo = new LinkedHashMap<>();
                    indexInfo.put("name", index);
                    indexInfo.put("stamp", stamp);
                    body.put("index", indexInfo);
                }
                body.put("models", models);
                return body;
            }));
            if (index == null) {
                withStamp.onResponse(null);
            } else {
                IndexStampFetcher.fetch(client, index, withStamp);
            }
        };
    }

    static void describe(Map<String, Object> entry, ModelManifest m) {
        entry.put("model", m.modelName());
        entry.put("source_model", m.sourceModel());
        entry.put("quantization", m.quantization());
        entry.put("dims", m.dim());
        entry.put("sha256", m.sha256());
        entry.put("max_length", m.maxLength());
        entry.put("pooling", m.pooling());
        entry.put("normalize", m.normalize());
        entry.put("query_prefix", m.queryPrefix());
        entry.put("passage_prefix", m.passagePrefix());
        entry.put("output", m.output());
        entry.put("pooling_in_graph", m.poolingInGraph());
        Map<String, Object> provenance = new LinkedHashMap<>();
        provenance.put("source_model", m.sourceModel());
        provenance.put("opset", m.opset());
        provenance.put("onnxruntime_version", m.onnxruntimeVersion());
        // int8 kernels differ between onnxruntime versions (cosine ~0.996 between 1.29 and 1.32):
        // vectors match the exporter's only when the versions are the same
        entry.put("same_onnxruntime_as_export", Versions.onnxruntime().equals(m.onnxruntimeVersion()));
        provenance.put("parity", m.parity());
        provenance.put("file_sizes", m.fileSizes());
        entry.put("provenance", provenance);
    }
}

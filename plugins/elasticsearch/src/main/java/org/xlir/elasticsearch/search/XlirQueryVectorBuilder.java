package org.xlir.elasticsearch.search;

import org.elasticsearch.TransportVersion;
import org.elasticsearch.action.ActionListener;
import org.elasticsearch.client.internal.Client;
import org.elasticsearch.common.io.stream.StreamInput;
import org.elasticsearch.common.io.stream.StreamOutput;
import org.elasticsearch.search.vectors.QueryVectorBuilder;
import org.elasticsearch.xcontent.ConstructingObjectParser;
import org.elasticsearch.xcontent.ParseField;
import org.elasticsearch.xcontent.XContentBuilder;
import org.elasticsearch.xcontent.XContentParser;
import org.xlir.core.InputType;
import org.xlir.core.ModelRegistry;
import org.xlir.elasticsearch.inference.InferenceService;

import java.io.IOException;
import java.util.List;
import java.util.Objects;
import java.util.function.Supplier;

/**
 * {@code "query_vector_builder": {"xlir": {"model": "default", "text": "..."}}}: the query
 * vector is the model's embedding of {@code text} with the model's query prefix
 * ({@code input_type} may say {@code passage} or {@code raw} instead). Works wherever
 * Elasticsearch takes a query vector builder: the top-level {@code knn} section and the
 * {@code knn} query, filters included. The vector is computed on the node that rewrites the
 * request, on the plugin's thread pool.
 */
public final class XlirQueryVectorBuilder implements QueryVectorBuilder {

    public static final String NAME = "xlir";
    public static final ParseField MODEL = new ParseField("model");
    public static final ParseField TEXT = new ParseField("text");
    public static final ParseField INPUT_TYPE = new ParseField("input_type");

    private static final ConstructingObjectParser<Args, Void> PARSER = new ConstructingObjectParser<>(
        NAME + "_query_vector_builder",
        false,
        a -> new Args((String) a[0], (String) a[1], (String) a[2])
    );

    static {
        PARSER.declareString(ConstructingObjectParser.constructorArg(), MODEL);
        PARSER.declareString(ConstructingObjectParser.constructorArg(), TEXT);
        PARSER.declareString(ConstructingObjectParser.optionalConstructorArg(), INPUT_TYPE);
    }

    private record Args(String model, String text, String inputType) {}

    public static XlirQueryVectorBuilder fromXContent(XContentParser parser, Supplier<InferenceService> service) {
        Args args = PARSER.apply(parser, null);
        InputType type = args.inputType() == null ? InputType.QUERY : InputType.parse(args.inputType());
        return new XlirQueryVectorBuilder(args.model(), args.text(), type, service);
    }

    private final String model;
    private final String text;
    private final InputType inputType;
    private final Supplier<InferenceService> service;

    public XlirQueryVectorBuilder(String model, String text, InputType inputType, Supplier<InferenceService> service) {
        this.model = ModelRegistry.validateName(model);
        if (text == null || text.isBlank()) {
            throw new IllegalArgumentException("[" + NAME + "] query vector builder needs a non-empty [text]");
        }
        this.text = text;
        this.inputType = Objects.requireNonNull(inputType);
        this.service = service;
    }

    public XlirQueryVectorBuilder(StreamInput in, Supplier<InferenceService> service) throws IOException {
        this(in.readString(), in.readString(), in.readEnum(InputType.class), service);
    }

    @Override
    public void writeTo(StreamOutput out) throws IOException {
        out.writeString(model);
        out.writeString(text);
        out.writeEnum(inputType);
    }

    @Override
    public String getWriteableName() {
        return NAME;
    }

    @Override
    public TransportVersion getMinimalSupportedVersion() {
        return TransportVersion.minimumCompatible();
    }

    @Override
    public void buildVector(Client client, ActionListener<float[]> listener) {
        InferenceService inference = service.get();
        if (inference == null) {
            listener.onFailure(new IllegalStateException("the xlir plugin is not started on this node"));
            return;
        }
        inference.embed(model, List.of(text), inputType, listener.map(result -> result.vectors()[0]));
    }

    @Override
    public XContentBuilder toXContent(XContentBuilder builder, Params params) throws IOException {
        builder.startObject();
        builder.field(MODEL.getPreferredName(), model);
        builder.field(TEXT.getPreferredName(), text);
        if (inputType != InputType.QUERY) {
            builder.field(INPUT_TYPE.getPreferredName(), inputType.toString());
        }
        return builder.endObject();
    }

    public String model() {
        return model;
    }

    public String text() {
        return text;
    }

    public InputType inputType() {
        return inputType;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof XlirQueryVectorBuilder other
            && model.equals(other.model)
            && text.equals(other.text)
            && inputType == other.inputType;
    }

    @Override
    public int hashCode() {
        return Objects.hash(model, text, inputType);
    }

    @Override
    public String toString() {
        return NAME + "{model=" + model + ", text=" + text + ", input_type=" + inputType + "}";
    }
}

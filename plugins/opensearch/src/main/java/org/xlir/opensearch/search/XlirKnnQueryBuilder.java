package org.xlir.opensearch.search;

import org.apache.lucene.search.Query;
import org.apache.lucene.util.SetOnce;
import org.opensearch.common.xcontent.XContentFactory;
import org.opensearch.common.xcontent.json.JsonXContent;
import org.opensearch.core.ParseField;
import org.opensearch.core.common.ParsingException;
import org.opensearch.core.common.bytes.BytesReference;
import org.opensearch.core.common.io.stream.StreamInput;
import org.opensearch.core.common.io.stream.StreamOutput;
import org.opensearch.core.xcontent.DeprecationHandler;
import org.opensearch.core.xcontent.NamedObjectNotFoundException;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.index.query.AbstractQueryBuilder;
import org.opensearch.index.query.QueryBuilder;
import org.opensearch.index.query.QueryRewriteContext;
import org.opensearch.index.query.QueryShardContext;
import org.xlir.core.InputType;
import org.xlir.core.Listener;
import org.xlir.core.ModelRegistry;
import org.xlir.opensearch.inference.InferenceService;

import java.io.IOException;
import java.io.InputStream;
import java.util.List;
import java.util.Objects;
import java.util.function.Supplier;

/**
 * {@code {"xlir_knn": {"field": "embedding", "text": "...", "model": "default", "k": 10,
 * "filter": {...}}}}: a kNN search by text. The rewrite embeds {@code text} with the model's
 * query prefix ({@code input_type} may say {@code passage} or {@code raw}) as an async action of
 * the rewrite context, on the plugin's {@code xlir_search} pool (no transport or search thread
 * waits on the model), then turns into the k-NN plugin's {@code knn} query with that vector, the
 * same {@code k} and {@code filter}. The {@code knn} query is built by name through the node's
 * query registry, so the plugin compiles and loads without the k-NN plugin's classes; a node
 * without k-NN answers with a clear error. Every node that rewrites requests needs the model.
 */
public final class XlirKnnQueryBuilder extends AbstractQueryBuilder<XlirKnnQueryBuilder> {

    public static final String NAME = "xlir_knn";
    /** The k-NN plugin's query this one rewrites into. */
    public static final String KNN_QUERY = "knn";
    static final ParseField FIELD = new ParseField("field");
    static final ParseField TEXT = new ParseField("text");
    static final ParseField MODEL = new ParseField("model");
    static final ParseField K = new ParseField("k");
    static final ParseField FILTER = new ParseField("filter");
    static final ParseField INPUT_TYPE = new ParseField("input_type");
    /** k-NN's option for a nested field: score every passage of the documents found (inner_hits). */
    static final ParseField EXPAND_NESTED_DOCS = new ParseField("expand_nested_docs");

    private final String field;
    private final String text;
    private final String model;
    private final int k;
    private final QueryBuilder filter;
    private final InputType inputType;
    private final boolean expandNestedDocs;
    private final Supplier<InferenceService> service;
    /** Set once the rewrite's async action has embedded the text; null before the rewrite. */
    private final Supplier<float[]> vector;

    public XlirKnnQueryBuilder(
        String field,
        String text,
        String model,
        int k,
        QueryBuilder filter,
        InputType inputType,
        boolean expandNestedDocs,
        Supplier<InferenceService> service
    ) {
        this(field, text, model, k, filter, inputType, expandNestedDocs, service, null);
    }

    private XlirKnnQueryBuilder(
        String field,
        String text,
        String model,
        int k,
        QueryBuilder filter,
        InputType inputType,
        boolean expandNestedDocs,
        Supplier<InferenceService> service,
        Supplier<float[]> vector
    ) {
        if (field == null || field.isEmpty()) {
            throw new IllegalArgumentException("[" + NAME + "] needs a [field] (the knn_vector field)");
        }
        if (text == null || text.isBlank()) {
            throw new IllegalArgumentException("[" + NAME + "] needs a non-empty [text]");
        }
        if (k < 1) {
            throw new IllegalArgumentException("[" + NAME + "] needs [k] >= 1, got " + k);
        }
        this.field = field;
        this.text = text;
        this.model = ModelRegistry.validateName(model);
        this.k = k;
        this.filter = filter;
        this.inputType = Objects.requireNonNull(inputType);
        this.expandNestedDocs = expandNestedDocs;
        this.service = service;
        this.vector = vector;
    }

    public XlirKnnQueryBuilder(StreamInput in, Supplier<InferenceService> service) throws IOException {
        super(in);
        this.field = in.readString();
        this.text = in.readString();
        this.model = in.readString();
        this.k = in.readVInt();
        this.filter = in.readOptionalNamedWriteable(QueryBuilder.class);
        this.inputType = InputType.parse(in.readString());
        this.expandNestedDocs = in.readBoolean();
        this.service = service;
        this.vector = null;
    }

    @Override
    protected void doWriteTo(StreamOutput out) throws IOException {
        if (vector != null) {
            throw new IllegalStateException("[" + NAME + "] is being rewritten: send the rewritten query (missing a rewriteAndFetch?)");
        }
        out.writeString(field);
        out.writeString(text);
        out.writeString(model);
        out.writeVInt(k);
        out.writeOptionalNamedWriteable(filter);
        out.writeString(inputType.toString());
        out.writeBoolean(expandNestedDocs);
    }

    public static XlirKnnQueryBuilder fromXContent(XContentParser parser, Supplier<InferenceService> service) throws IOException {
        String field = null;
        String text = null;
        String model = null;
        Integer k = null;
        QueryBuilder filter = null;
        String inputType = null;
        boolean expandNestedDocs = false;
        float boost = DEFAULT_BOOST;
        String queryName = null;
        String current = null;
        XContentParser.Token token;
        while ((token = parser.nextToken()) != XContentParser.Token.END_OBJECT) {
            if (token == XContentParser.Token.FIELD_NAME) {
                current = parser.currentName();
            } else if (token == XContentParser.Token.START_OBJECT && FILTER.match(current, parser.getDeprecationHandler())) {
                filter = parseInnerQueryBuilder(parser);
            } else if (token.isValue() && current != null) {
                switch (current) {
                    case "field" -> field = parser.text();
                    case "text" -> text = parser.text();
                    case "model" -> model = parser.text();
                    case "k" -> k = parser.intValue();
                    case "input_type" -> inputType = parser.text();
                    case "expand_nested_docs" -> expandNestedDocs = parser.booleanValue();
                    case "boost" -> boost = parser.floatValue();
                    case "_name" -> queryName = parser.text();
                    default -> throw new ParsingException(parser.getTokenLocation(), "[" + NAME + "] does not support [" + current + "]");
                }
            } else {
                throw new ParsingException(parser.getTokenLocation(), "[" + NAME + "] unexpected " + token + " after [" + current + "]");
            }
        }
        if (k == null) {
            throw new ParsingException(parser.getTokenLocation(), "[" + NAME + "] needs [k]");
        }
        if (model == null) {
            throw new ParsingException(parser.getTokenLocation(), "[" + NAME + "] needs [model] (an installed xlir model's name)");
        }
        XlirKnnQueryBuilder builder;
        try {
            InputType type = inputType == null ? InputType.QUERY : InputType.parse(inputType);
            builder = new XlirKnnQueryBuilder(field, text, model, k, filter, type, expandNestedDocs, service);
        } catch (IllegalArgumentException e) {
            throw new ParsingException(parser.getTokenLocation(), e.getMessage(), e);
        }
        return builder.boost(boost).queryName(queryName);
    }

    @Override
    protected void doXContent(XContentBuilder builder, Params params) throws IOException {
        builder.startObject(NAME);
        builder.field(FIELD.getPreferredName(), field);
        builder.field(TEXT.getPreferredName(), text);
        builder.field(MODEL.getPreferredName(), model);
        builder.field(K.getPreferredName(), k);
        if (filter != null) {
            builder.field(FILTER.getPreferredName(), filter);
        }
        if (inputType != InputType.QUERY) {
            builder.field(INPUT_TYPE.getPreferredName(), inputType.toString());
        }
        if (expandNestedDocs) {
            builder.field(EXPAND_NESTED_DOCS.getPreferredName(), true);
        }
        printBoostAndQueryName(builder);
        builder.endObject();
    }

    @Override
    protected QueryBuilder doRewrite(QueryRewriteContext context) throws IOException {
        if (vector != null) {
            float[] v = vector.get();
            return v == null ? this : knnQuery(v, context.getXContentRegistry());
        }
        InferenceService inference = service == null ? null : service.get();
        if (inference == null) {
            throw new IllegalStateException("[" + NAME + "] the xlir plugin is not started on this node");
        }
        SetOnce<float[]> embedded = new SetOnce<>();
        context.registerAsyncAction((client, listener) -> inference.core().embed(model, List.of(text), inputType, Listener.of(result -> {
            embedded.set(result.vectors()[0]);
            listener.onResponse(null);
        }, listener::onFailure)));
        return new XlirKnnQueryBuilder(field, text, model, k, filter, inputType, expandNestedDocs, service, embedded::get).boost(boost)
            .queryName(queryName);
    }

    /** The k-NN plugin's {@code knn} query for {@code v}, parsed through the node's query registry. */
    QueryBuilder knnQuery(float[] v, NamedXContentRegistry registry) throws IOException {
        XContentBuilder json = knnJson(v);
        try (
            InputStream in = BytesReference.bytes(json).streamInput();
            XContentParser parser = JsonXContent.jsonXContent.createParser(registry, DeprecationHandler.THROW_UNSUPPORTED_OPERATION, in)
        ) {
            parser.nextToken();
            return parseInnerQueryBuilder(parser);
        } catch (ParsingException | NamedObjectNotFoundException e) {
            if (e.getMessage() != null && e.getMessage().contains("unknown query [" + KNN_QUERY + "]")) {
                throw new IllegalStateException(
                    "[" + NAME + "] rewrites into the k-NN plugin's [knn] query: install opensearch-knn on every node (" + e.getMessage() + ")",
                    e
                );
            }
            throw e;
        }
    }

    /** {@code {"knn": {<field>: {"vector": [...], "k": k, "filter": {...}, "boost": b}}}}. */
    XContentBuilder knnJson(float[] v) throws IOException {
        XContentBuilder json = XContentFactory.jsonBuilder();
        json.startObject().startObject(KNN_QUERY).startObject(field);
        json.startArray("vector");
        for (float f : v) {
            json.value(f);
        }
        json.endArray();
        json.field("k", k);
        if (filter != null) {
            json.field("filter", filter);
        }
        if (expandNestedDocs) {
            json.field(EXPAND_NESTED_DOCS.getPreferredName(), true);
        }
        json.field("boost", boost);
        if (queryName != null) {
            json.field("_name", queryName);
        }
        json.endObject().endObject().endObject();
        return json;
    }

    @Override
    protected Query doToQuery(QueryShardContext context) {
        throw new IllegalStateException("[" + NAME + "] must be rewritten into a [" + KNN_QUERY + "] query first");
    }

    @Override
    protected boolean doEquals(XlirKnnQueryBuilder other) {
        return field.equals(other.field)
            && text.equals(other.text)
            && model.equals(other.model)
            && k == other.k
            && Objects.equals(filter, other.filter)
            && inputType == other.inputType
            && expandNestedDocs == other.expandNestedDocs
            && Objects.equals(vector, other.vector);
    }

    @Override
    protected int doHashCode() {
        return Objects.hash(field, text, model, k, filter, inputType, expandNestedDocs, vector);
    }

    @Override
    public String getWriteableName() {
        return NAME;
    }

    public String field() {
        return field;
    }

    public String text() {
        return text;
    }

    public String model() {
        return model;
    }

    public int k() {
        return k;
    }

    public QueryBuilder filter() {
        return filter;
    }

    public InputType inputType() {
        return inputType;
    }
}

package org.xlir.elasticsearch.model;

import org.elasticsearch.ElasticsearchException;
import org.elasticsearch.rest.RestStatus;

/** An installed model that cannot be used (missing or corrupt file, bad settings); names the model. */
public class ModelException extends ElasticsearchException {

    public ModelException(String model, String problem) {
        this(model, problem, null);
    }

    public ModelException(String model, String problem, Throwable cause) {
        super("xlir model [" + model + "]: " + problem.replace("{}", "{ }"), cause);
    }

    @Override
    public RestStatus status() {
        return RestStatus.INTERNAL_SERVER_ERROR;
    }
}

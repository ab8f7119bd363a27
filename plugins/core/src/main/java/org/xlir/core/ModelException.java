package org.xlir.core;

/**
 * An installed model that cannot be used (missing or corrupt file, bad settings); names the model.
 * A plain RuntimeException: engines answer it with 500 and the type {@code model_exception}.
 */
public class ModelException extends RuntimeException {

    public ModelException(String model, String problem) {
        this(model, problem, null);
    }

    public ModelException(String model, String problem, Throwable cause) {
        super("xlir model [" + model + "]: " + problem, cause);
    }

    protected ModelException(String message) {
        super(message);
    }
}

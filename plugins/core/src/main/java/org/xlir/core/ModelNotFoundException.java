package org.xlir.core;

/** No directory for the named model: adapters answer it as their engine's resource-not-found (404). */
public final class ModelNotFoundException extends ModelException {

    public ModelNotFoundException(String message) {
        super(message);
    }
}

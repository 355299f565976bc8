"""Text encoders for the neural adapters; each module imports torch and its model library on use."""

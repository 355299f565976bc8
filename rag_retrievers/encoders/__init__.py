"""Text encoders: the BM25 analyzer, and the neural encoders (each imports torch and its model
library on use) with the model identity a collection records."""

"""The data layer: annotations + feature stores + text inputs -> padded, masked batches."""

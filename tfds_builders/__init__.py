"""TFDS builders of sbirjax (array_record, no TensorFlow needed)."""

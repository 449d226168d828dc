"""tf.data input pipelines and embedded corpora shared by the dlsuite apps."""

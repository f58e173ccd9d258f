"""``convert-model distill``: a teacher labels a camera's footage, a Gaussian YOLOv3 student learns it (Noisy Student)."""

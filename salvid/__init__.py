"""salvid: video salient-object detection with 3D convolutional networks."""

"""DICOM in and out: reading and classifying files, LE/HE pairing, derived-object writing."""

"""DICOMweb (PS3.18) in the domain: matching rules, DICOM JSON read models, media types."""

-- De-identification at ingest (PS3.15 Basic Profile): a centre that turns it on stores every
-- uploaded DICOM file de-identified, never the file as received.

ALTER TABLE centres ADD COLUMN deidentify_at_ingest boolean NOT NULL DEFAULT false;

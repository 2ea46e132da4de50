-- DICOMweb (QIDO-RS / WADO-RS): searches by UID, by DICOM Modality code in the stored headers,
-- and the first instance of a study or series (whose header stands for it), served by indexes.

CREATE INDEX instances_study_modality_idx
    ON instances (study_id, (header #>> '{00080060,Value,0}'), series_id);
CREATE INDEX instances_series_modality_idx
    ON instances (series_id, (header #>> '{00080060,Value,0}'));
CREATE INDEX instances_study_first_idx ON instances (study_id, id);
CREATE INDEX instances_series_first_idx ON instances (series_id, id);
CREATE INDEX instances_centre_sop_class_idx ON instances (centre_id, sop_class_uid);
CREATE INDEX series_centre_uid_idx ON series (centre_id, series_instance_uid);
CREATE INDEX series_study_order_idx
    ON series (study_id, series_number, series_instance_uid COLLATE "C");
CREATE INDEX studies_centre_accession_idx ON studies (centre_id, accession_number);
CREATE INDEX studies_centre_newest_idx ON studies (centre_id, created_at DESC, id DESC);

"""ICD-10 diagnosis codes on a consult: coded data that crosses languages untranslated."""

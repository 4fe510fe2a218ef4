"""The operator's panel of DEFT: an rqt plugin and a standalone window (`deft_panel`)."""

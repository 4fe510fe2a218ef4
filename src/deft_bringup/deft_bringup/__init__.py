"""Launch files, parameters and the one graph description of the DEFT stack."""

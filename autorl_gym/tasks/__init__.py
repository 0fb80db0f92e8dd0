"""Task families: how a split is loaded, prompted and scored."""

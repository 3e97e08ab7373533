"""Body models behind one interface, and garment skinning (METHOD section 3)."""

"""Body models behind one interface, and garment skinning (docs/method.md section 3)."""

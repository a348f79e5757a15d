"""Sample cases of the 辦不成事 window, one file per case (used by `unstuck demo`)."""

"""Recording the speaker on the dashboard's side (torch-free): the microphones, at either end of the SSH link."""

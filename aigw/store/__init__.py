"""What aigw keeps on disk between runs: users' upstream OAuth tokens, the clients it
registered with backends' authorization servers, and the pins of backends' tools."""

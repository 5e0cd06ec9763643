"""`artstore dev up`: the whole cluster on one machine, as processes under one supervisor."""

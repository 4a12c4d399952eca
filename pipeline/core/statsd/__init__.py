"""StatsD on the agent, pure: parsing datagrams and aggregating them exactly as etsy StatsD."""

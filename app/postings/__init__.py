"""Supply and demand (供需匹配): what institutions need or offer, and matching them."""

"""Built-in strategies. Each module registers through the public
`gossipmq_register_strategies` hook, exactly as a third-party plugin does."""

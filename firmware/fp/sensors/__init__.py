# Sensor drivers behind one interface: read() -> (temperature °C, relative humidity % or
# None), raising OSError when the sensor does not answer or its data fails its check (the
# HAL then sends the reading without it). The board profile's "sensors" picks the driver
# (fp/hal/mcu.py make_sensor); each gets its bus passed in.
